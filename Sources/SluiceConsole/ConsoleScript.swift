/// The console's script (`ui/console.js`): plain, modern JavaScript, no
/// framework. Every request goes to a path relative to the page's
/// `<base href>`; every piece of a log line reaches the page as text
/// (`textContent`, never HTML).
enum ConsoleScript {
    static let source = #"""
        'use strict';
        (() => {
        const TOKEN_KEY = 'sluice.token';
        const MAX_LINES = 50000;       // lines the tail keeps; older ones are trimmed and counted
        const RECENT_LINES = 1000;     // recent lines shown before live ones
        const LINES_PER_FRAME = 4000;  // most lines taken into the page in one animation frame
        const ROW_PX = 18;             // the height of a line in the tail (console.css: .line)
        const POLL_MS = 3000;

        const state = { token: sessionStorage.getItem(TOKEN_KEY), view: null };

        // ---------- requests ----------

        function url(path) { return new URL(path, document.baseURI); }

        function socketURL(path) {
          const address = url(path);
          address.protocol = address.protocol === 'https:' ? 'wss:' : 'ws:';
          return address;
        }

        class APIError extends Error {
          constructor(status, code, message) { super(message); this.status = status; this.code = code; }
        }

        async function api(path, options = {}) {
          const headers = new Headers(options.headers || {});
          if (state.token) headers.set('Authorization', 'Bearer ' + state.token);
          let response;
          try {
            response = await fetch(url(path), Object.assign({}, options, { headers, cache: 'no-store' }));
          } catch (error) {
            throw new APIError(0, 'unreachable', 'The controller did not answer: ' + error.message);
          }
          if (response.ok) return response;
          let body = {};
          try { body = await response.json(); } catch (_) { /* not JSON */ }
          const error = new APIError(response.status, body.error || '', body.message || response.statusText);
          if (response.status === 401) signedOut(error);
          throw error;
        }

        async function json(path, options) { return (await api(path, options)).json(); }

        // ---------- the page ----------

        function el(tag, attributes, ...children) {
          const node = document.createElement(tag);
          for (const [name, value] of Object.entries(attributes || {})) {
            if (value === undefined || value === null || value === false) continue;
            if (name === 'class') node.className = value;
            else if (name === 'text') node.textContent = value;
            else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
            else node.setAttribute(name, value === true ? '' : String(value));
          }
          for (const child of children) {
            if (child === null || child === undefined) continue;
            node.append(child instanceof Node ? child : document.createTextNode(String(child)));
          }
          return node;
        }

        function show(...nodes) {
          const main = document.getElementById('view');
          main.className = '';
          main.replaceChildren(...nodes);
          return main;
        }

        function say(text, kind) {
          const box = document.getElementById('message');
          box.textContent = text || '';
          box.className = kind || '';
          box.hidden = !text;
        }

        function problem(error) {
          if (error.status === 404) return 'No such app, or your token may not read it.';
          if (error.status === 403) return 'Your token may not do that: ' + error.message;
          return error.message;
        }

        function formatNumber(value) { return Number(value).toLocaleString('en-US'); }

        function pad(value, width) { return String(value).padStart(width || 2, '0'); }

        // cf logs' time: 2006-01-02T15:04:05.00-0700, in the browser's time
        // zone. Lines come many to a second: the second's text is kept.
        const timeCache = { second: null, before: '', after: '' };
        function cfTime(nanos) {
          const text = String(nanos);
          const second = text.length > 9 ? text.slice(0, -9) : '0';
          const hundredths = pad(Math.floor(Number(text.slice(-9)) / 1e7) % 100);
          if (second !== timeCache.second) {
            const date = new Date(Number(second) * 1000);
            const offset = -date.getTimezoneOffset();
            const minutes = Math.abs(offset);
            timeCache.second = second;
            timeCache.before = date.getFullYear() + '-' + pad(date.getMonth() + 1) + '-' + pad(date.getDate()) + 'T' +
              pad(date.getHours()) + ':' + pad(date.getMinutes()) + ':' + pad(date.getSeconds()) + '.';
            timeCache.after = (offset < 0 ? '-' : '+') + pad(Math.floor(minutes / 60)) + pad(minutes % 60);
          }
          return timeCache.before + hundredths + timeCache.after;
        }

        // ---------- signing in ----------

        function signedOut(error) {
          if (!state.token && document.getElementById('sign-in')) return;  // said already
          const had = Boolean(state.token);
          const expired = /expired/i.test(error.message);
          state.token = null;
          sessionStorage.removeItem(TOKEN_KEY);
          stopView();
          if (!had) signIn('');
          else signIn(expired ? 'Your token has expired: sign in again.' : 'The controller refused the token (' + error.message + '): sign in again.');
        }

        function signIn(reason) {
          say('');
          document.getElementById('sign-out').hidden = true;
          document.getElementById('who').textContent = '';
          const field = el('textarea', { id: 'token', name: 'token', required: true, spellcheck: 'false', autocomplete: 'off',
            placeholder: 'eyJhbGciOi…' });
          const failure = el('p', { id: 'sign-in-message', class: 'form-error', role: 'alert', text: reason || '' });
          const form = el('form', { class: 'sign-in', id: 'sign-in' },
            el('h1', { text: 'Sign in' }),
            el('p', { class: 'muted', text: 'Paste a token (sluice token, or cf oauth-token). It is kept for this tab only.' }),
            failure, field,
            el('div', {}, el('button', { class: 'primary', type: 'submit', id: 'sign-in-button', text: 'Sign in' })));
          form.addEventListener('submit', async (event) => {
            event.preventDefault();
            const token = field.value.trim().replace(/^bearer\s+/i, '');
            if (!token) return;
            try {
              const response = await fetch(url('apps'), { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
              if (response.status === 401) {
                let body = {};
                try { body = await response.json(); } catch (_) { /* not JSON */ }
                failure.textContent = /expired/i.test(body.message || '') ? 'That token has expired.' :
                  'That token was refused: ' + (body.message || 'unauthorized') + '.';
                return;
              }
              state.token = token;
              sessionStorage.setItem(TOKEN_KEY, token);
              if (!location.hash || location.hash === '#/sign-in') location.hash = '#/apps'; else route();
            } catch (error) {
              failure.textContent = 'The controller did not answer: ' + error.message;
            }
          });
          show(form);
          field.focus();
        }

        // `sluice ui` prints …/#login=CODE: the code is traded for the token
        // once, and the address bar keeps neither.
        async function takeLoginLink() {
          const match = /^#login=([A-Za-z0-9_-]+)$/.exec(location.hash);
          if (!match) return;
          history.replaceState(null, '', location.pathname + location.search + '#/apps');
          try {
            const response = await fetch(url('ui/login'), {
              method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code: match[1] }),
              cache: 'no-store' });
            const body = await response.json();
            if (response.ok && body.token) {
              state.token = body.token;
              sessionStorage.setItem(TOKEN_KEY, body.token);
            } else {
              state.pendingReason = body.message || 'That sign-in link was used already or has expired: run sluice ui again.';
            }
          } catch (error) {
            state.pendingReason = 'The sign-in link could not be used: ' + error.message;
          }
        }

        // ---------- views ----------

        function stopView() {
          if (state.view && state.view.stop) state.view.stop();
          state.view = null;
        }

        function markNav(which) {
          for (const id of ['nav-apps', 'nav-cluster']) {
            document.getElementById(id).classList.toggle('current', id === which);
          }
        }

        function route() {
          stopView();
          say('');
          if (state.pendingReason) {
            const reason = state.pendingReason;
            state.pendingReason = null;
            signIn(reason);
            return;
          }
          document.getElementById('sign-out').hidden = !state.token;
          // #/apps/APP[/drains], APP percent-encoded as one segment.
          let parts;
          try {
            parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
          } catch (_) {
            parts = [];
          }
          if (parts[0] === 'cluster') { markNav('nav-cluster'); state.view = clusterView(); return; }
          if (parts[0] === 'apps' && parts[1] && (parts.length === 2 || (parts.length === 3 && parts[2] === 'drains'))) {
            markNav('nav-apps');
            state.view = parts.length === 3 ? drainsView(parts[1]) : tailView(parts[1]);
            return;
          }
          markNav('nav-apps');
          state.view = appsView();
        }

        function appHash(app, rest) { return '#/apps/' + encodeURIComponent(app) + (rest ? '/' + rest : ''); }
        function appPath(app, rest) { return 'apps/' + encodeURIComponent(app) + '/' + rest; }

        // Runs `work` now and every POLL_MS until the view stops; `work`
        // is given a function saying whether it has. An error is said (a
        // 401 has signed out already).
        function poll(work) {
          let stopped = false;
          let timer = null;
          async function tick() {
            clearTimeout(timer);
            try { await work(() => stopped); } catch (error) {
              if (error.status !== 401 && !stopped) say(problem(error), 'error');
            }
            clearTimeout(timer);
            if (!stopped) timer = setTimeout(tick, POLL_MS);
          }
          tick();
          return { stop() { stopped = true; clearTimeout(timer); }, now: tick };
        }

        // Apps: the apps the token may read, with their line rate and drops.
        function appsView() {
          const body = el('tbody');
          const table = el('table', { id: 'apps' },
            el('thead', {}, el('tr', {},
              el('th', { text: 'App' }), el('th', { class: 'number', text: 'Lines/s' }),
              el('th', { class: 'number', text: 'Held' }), el('th', { class: 'number', text: 'Dropped' }),
              el('th', { class: 'number', text: 'Let go (full)' }), el('th', { text: 'Newest line' }), el('th', { text: '' }))),
            body);
          const note = el('p', { class: 'status', id: 'apps-status' });
          // A token whose apps are decided by --authorize-url (a cf
          // oauth-token) names none: its apps are opened by name.
          const openName = el('input', { id: 'open-app', placeholder: 'app id or GUID', autocomplete: 'off',
            'aria-label': 'App to open' });
          const open = el('form', { class: 'inline', id: 'open-app-form' }, openName,
            el('button', { type: 'submit', text: 'Open its logs' }));
          open.addEventListener('submit', (event) => {
            event.preventDefault();
            if (openName.value.trim()) location.hash = appHash(openName.value.trim());
          });
          show(el('h1', { text: 'Apps' }), open, table, note);
          let previous = null;
          return poll(async (stopped) => {
            const answer = await json('apps');
            if (stopped()) return;
            const now = performance.now();
            const rows = answer.apps.map((app) => {
              let rate = '';
              if (previous && previous.lines.has(app.app)) {
                const seconds = (now - previous.at) / 1000;
                rate = seconds > 0 ? Math.max(0, (app.lines - previous.lines.get(app.app)) / seconds).toFixed(1) : '';
              }
              return el('tr', { 'data-app': app.app },
                el('td', {}, el('a', { href: appHash(app.app), text: app.app })),
                el('td', { class: 'number', text: rate }),
                el('td', { class: 'number', text: formatNumber(app.held) }),
                el('td', { class: 'number dropped', text: formatNumber(app.dropped) }),
                el('td', { class: 'number', text: formatNumber(app.expired) }),
                el('td', { text: app.newest && app.newest !== '0' ? cfTime(app.newest) : '' }),
                el('td', {}, el('a', { href: appHash(app.app, 'drains'), text: 'Drains' })));
            });
            body.replaceChildren(...rows);
            previous = { at: now, lines: new Map(answer.apps.map((app) => [app.app, app.lines])) };
            note.textContent = answer.apps.length === 0 ? 'No app has logged yet, or your token names none.' :
              (answer.partial && answer.partial.length ? 'Zone ' + answer.partial.join(', ') + ' did not answer: its counts are missing.' : '');
          });
        }

        // ---------- the tail ----------

        const utf8 = new TextDecoder('utf-8');
        function decodePayload(base64) {
          const binary = atob(base64 || '');
          const bytes = new Uint8Array(binary.length);
          for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index);
          return utf8.decode(bytes);
        }

        // An envelope in protobuf's JSON (the stream's camelCase or the
        // API's proto names) as the lines cf logs would print, or a notice.
        function parseEnvelope(envelope) {
          if (!envelope.log) return null;
          const tags = envelope.tags || {};
          const timestamp = String(envelope.timestamp || '0');
          const text = decodePayload(envelope.log.payload);
          // Sluice's own notices only: an app's line cannot pose as one.
          if (tags.sluice_notice && tags.source_type === 'SLUICE') return { notice: tags.sluice_notice, text, timestamp };
          const err = envelope.log.type === 'ERR';
          const sourceType = tags.source_type || '';
          const instance = String(envelope.instanceId !== undefined ? envelope.instanceId : (envelope.instance_id || ''));
          const source = sourceType && instance ? sourceType + '/' + instance : (sourceType || instance || '-');
          const header = cfTime(timestamp) + ' [' + source + '] ' + (err ? 'ERR' : 'OUT') + ' ';
          const pieces = text.replace(/[\r\n]+$/, '').split('\n').map((piece) => piece.replace(/\r$/, ''));
          return { lines: pieces.map((piece) => ({ header, text: piece, err, sourceType, instance, timestamp, seq: 0 })) };
        }

        function tailView(app) {
          const main = show();
          main.className = 'tail-view';
          const lines = [];          // the window: the newest MAX_LINES lines, oldest first
          let incoming = [];         // lines not yet taken into the window
          let nextSeq = 1;
          let shownSeq = 0;          // the newest line rendered
          let trimmed = 0;
          let paused = false;
          let pausedCount = 0;
          let following = true;
          let frame = 0;
          let socket = null;
          let stopped = false;
          let retry = 1000;
          let retryTimer = null;
          const sourceTypes = new Set();
          const instances = new Set();
          const filter = { text: '', regex: null, kind: '', sourceType: '', instance: '' };

          const pauseButton = el('button', { id: 'pause', type: 'button', text: 'Pause' });
          const pausedLabel = el('span', { id: 'paused-count', class: 'muted' });
          const filterInput = el('input', { id: 'filter', type: 'search', placeholder: 'Filter: text, or /regular expression/',
            autocomplete: 'off', 'aria-label': 'Filter' });
          const kindSelect = el('select', { id: 'kind-filter', 'aria-label': 'OUT or ERR' },
            el('option', { value: '', text: 'OUT and ERR' }), el('option', { value: 'OUT', text: 'OUT' }),
            el('option', { value: 'ERR', text: 'ERR' }));
          const sourceSelect = el('select', { id: 'source-filter', 'aria-label': 'Source type' },
            el('option', { value: '', text: 'Every source' }));
          const instanceSelect = el('select', { id: 'instance-filter', 'aria-label': 'Instance' },
            el('option', { value: '', text: 'Every instance' }));
          const downloadButton = el('button', { id: 'download', type: 'button', text: 'Download' });
          const banners = el('div', { id: 'banners' });
          const trimmedNote = el('div', { id: 'trimmed', hidden: true });
          const box = el('div', { id: 'lines', class: 'lines', tabindex: '0' });
          const jump = el('button', { id: 'jump', type: 'button', hidden: true, text: 'Newest lines ↓' });
          const status = el('div', { id: 'tail-status', class: 'status' });
          main.append(
            el('div', { class: 'toolbar' },
              el('h1', { text: app, id: 'app-name' }),
              el('a', { href: appHash(app, 'drains'), id: 'drains-link', text: 'Drains' }),
              el('span', { class: 'spacer' }),
              pauseButton, pausedLabel, filterInput, kindSelect, sourceSelect, instanceSelect, downloadButton),
            banners, trimmedNote, box, jump, status);

          function matches(line) {
            if (filter.kind && (line.err ? 'ERR' : 'OUT') !== filter.kind) return false;
            if (filter.sourceType && line.sourceType !== filter.sourceType) return false;
            if (filter.instance && line.instance !== filter.instance) return false;
            if (filter.regex) return filter.regex.test(line.text);
            if (filter.text) return line.text.toLowerCase().includes(filter.text);
            return true;
          }

          function row(line) {
            const node = document.createElement('div');
            node.className = line.err ? 'line err' : 'line';
            const meta = document.createElement('span');
            meta.className = 'meta';
            meta.textContent = line.header;
            node.append(meta, document.createTextNode(line.text));
            return node;
          }

          // A virtual list: `view` holds the lines shown (those matching
          // the filter, up to the newest rendered), and only the rows in
          // sight are in the page, each ROW_PX high over a spacer as tall
          // as all of them. A frame costs the same with 50 lines or 50,000.
          const spacer = el('div', { class: 'spacer-rows' });
          const rows = el('div', { class: 'rows' });
          box.append(spacer, rows);
          let view = [];
          let paintFrame = 0;
          // For tests and the curious: the text of every line shown, in order.
          box.sluiceShown = () => view.map((line) => line.text);

          function paint() {
            paintFrame = 0;
            spacer.style.height = (view.length * ROW_PX) + 'px';
            if (following) box.scrollTop = box.scrollHeight;
            const first = Math.max(0, Math.floor(box.scrollTop / ROW_PX) - 10);
            const last = Math.min(view.length, Math.ceil((box.scrollTop + box.clientHeight) / ROW_PX) + 10);
            rows.style.transform = 'translateY(' + (first * ROW_PX) + 'px)';
            const fresh = [];
            for (let index = first; index < last; index++) fresh.push(row(view[index]));
            rows.replaceChildren(...fresh);
          }

          function schedulePaint() { if (!paintFrame) paintFrame = requestAnimationFrame(paint); }

          // Lines that arrived and match go on the view; lines trimmed from
          // the window leave it.
          function appendRows(fresh) {
            for (const line of fresh) if (matches(line)) view.push(line);
            const oldest = lines.length ? lines[0].seq : 0;
            let gone = 0;
            while (gone < view.length && view[gone].seq < oldest) gone++;
            if (gone) view.splice(0, gone);
            paint();
          }

          // A filter changed: the view again from the window (while paused,
          // only up to what was shown when the pause began).
          function rerender() {
            view = lines.filter((line) => line.seq <= shownSeq && matches(line));
            if (!paused) {
              following = true;
              jump.hidden = true;
            }
            paint();
          }

          function noteOptions(line) {
            if (line.sourceType && !sourceTypes.has(line.sourceType)) {
              sourceTypes.add(line.sourceType);
              sourceSelect.append(el('option', { value: line.sourceType, text: line.sourceType }));
            }
            if (line.instance && !instances.has(line.instance)) {
              instances.add(line.instance);
              instanceSelect.append(el('option', { value: line.instance, text: line.instance }));
            }
          }

          // Lines are taken in on animation frames, in batches: a page
          // receiving thousands a second draws at most once a frame.
          function render() {
            frame = 0;
            if (stopped) return;
            const batch = incoming.length > LINES_PER_FRAME ? incoming.splice(0, LINES_PER_FRAME) : incoming;
            if (batch === incoming) incoming = [];
            for (const line of batch) { line.seq = nextSeq++; lines.push(line); noteOptions(line); }
            if (lines.length > MAX_LINES) {
              const excess = lines.length - MAX_LINES;
              lines.splice(0, excess);
              noteTrimmed(excess);
            }
            if (paused) {
              pausedCount += batch.length;
              pausedLabel.textContent = formatNumber(pausedCount) + ' new ' + (pausedCount === 1 ? 'line' : 'lines') + ' while paused';
            } else if (batch.length) {
              appendRows(batch);
              shownSeq = lines[lines.length - 1].seq;
            }
            if (incoming.length) schedule();
          }

          function schedule() { if (!frame) frame = requestAnimationFrame(render); }

          function noteTrimmed(count) {
            trimmed += count;
            trimmedNote.hidden = false;
            trimmedNote.textContent = formatNumber(trimmed) + ' older lines trimmed: the page keeps the newest ' +
              formatNumber(MAX_LINES) + ' (Download saves what is kept).';
          }

          function take(parsed) {
            if (!parsed || stopped) return;
            if (parsed.notice) { banner(parsed.notice, parsed.text, parsed.timestamp); return; }
            for (const line of parsed.lines) incoming.push(line);
            // A hidden tab draws no frames while lines go on arriving: what
            // waits is bounded as the window is, the oldest trimmed.
            if (incoming.length > MAX_LINES) {
              const excess = incoming.length - MAX_LINES;
              incoming.splice(0, excess);
              noteTrimmed(excess);
            }
            schedule();
          }

          // Notices (lines dropped, a zone or server not answering) are
          // banners: the newest of each kind, with how many came.
          const bannerByKind = new Map();
          function banner(kind, text, timestamp) {
            let entry = bannerByKind.get(kind);
            if (!entry) {
              const close = el('button', { type: 'button', 'aria-label': 'Dismiss', text: '×' });
              const node = el('div', { class: 'banner ' + kind, 'data-kind': kind, role: 'status' },
                el('span', { class: 'kind', text: kind.replace(/_/g, ' ') }), el('span', { class: 'text' }),
                el('span', { class: 'count' }), close);
              entry = { node, count: 0 };
              close.addEventListener('click', () => { node.remove(); bannerByKind.delete(kind); });
              bannerByKind.set(kind, entry);
              banners.append(node);
            }
            entry.count += 1;
            entry.node.querySelector('.text').textContent = (timestamp ? cfTime(timestamp) + ' ' : '') + text;
            entry.node.querySelector('.count').textContent = entry.count > 1 ? '(' + entry.count + ' notices)' : '';
          }

          function clearBanner(kind) {
            const entry = bannerByKind.get(kind);
            if (entry) { entry.node.remove(); bannerByKind.delete(kind); }
          }

          pauseButton.addEventListener('click', () => {
            paused = !paused;
            pauseButton.textContent = paused ? 'Resume' : 'Pause';
            if (!paused) {
              pausedCount = 0;
              pausedLabel.textContent = '';
              appendRows(lines.filter((line) => line.seq > shownSeq));
              if (lines.length) shownSeq = lines[lines.length - 1].seq;
            }
          });

          let filterTimer = null;
          filterInput.addEventListener('input', () => {
            clearTimeout(filterTimer);
            filterTimer = setTimeout(() => {
              const value = filterInput.value;
              const pattern = /^\/(.+)\/([imsu]*)$/.exec(value);
              filter.regex = null;
              filter.text = '';
              filterInput.classList.remove('invalid');
              filterInput.title = '';
              if (pattern) {
                try { filter.regex = new RegExp(pattern[1], pattern[2]); } catch (error) {
                  filterInput.classList.add('invalid');
                  filterInput.title = 'Not a regular expression: ' + error.message;
                  return;
                }
              } else {
                filter.text = value.toLowerCase();
              }
              rerender();
            }, 120);
          });
          for (const [select, key] of [[kindSelect, 'kind'], [sourceSelect, 'sourceType'], [instanceSelect, 'instance']]) {
            select.addEventListener('change', () => { filter[key] = select.value; rerender(); });
          }

          box.addEventListener('scroll', () => {
            following = box.scrollTop + box.clientHeight >= box.scrollHeight - ROW_PX;
            jump.hidden = following;
            schedulePaint();
          });
          jump.addEventListener('click', () => { following = true; jump.hidden = true; paint(); });

          downloadButton.addEventListener('click', () => {
            const text = lines.filter(matches).map((line) => '   ' + line.header + line.text).join('\n') + '\n';
            const link = el('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/plain' })),
              download: app.replace(/[^A-Za-z0-9._-]/g, '_') + '-logs.txt' });
            document.body.append(link);
            link.click();
            link.remove();
            setTimeout(() => URL.revokeObjectURL(link.href), 10000);
          });

          // Live lines first (held until the recent ones are in, then those
          // already among the recent ones are left out), recent ones shown first.
          let early = [];
          let recentDone = false;

          function connect() {
            if (stopped) return;
            const address = socketURL(appPath(app, 'stream?format=json') +
              (state.token ? '&access_token=' + encodeURIComponent(state.token) : ''));
            socket = new WebSocket(address);
            socket.addEventListener('open', () => {
              retry = 1000;
              clearBanner('disconnected');
              status.textContent = 'Live: new lines appear at the bottom.';
            });
            socket.addEventListener('message', (event) => {
              let envelope;
              try { envelope = JSON.parse(event.data); } catch (_) { return; }
              const parsed = parseEnvelope(envelope);
              if (!recentDone && parsed && parsed.lines) early.push(parsed); else take(parsed);
            });
            socket.addEventListener('close', async () => {
              if (stopped) return;
              status.textContent = '';
              // A refused upgrade says nothing to a page: ask the API why.
              try { await api(appPath(app, 'recentlogs?limit=1')); } catch (error) {
                if (error.status === 401 || stopped) return;
                if (error.status === 404) { say(problem(error), 'error'); return; }
              }
              if (stopped) return;
              banner('disconnected', 'The live stream was cut; reconnecting (lines sent meanwhile are in Recent after a reload).');
              retryTimer = setTimeout(connect, retry);
              retry = Math.min(retry * 2, 15000);
            });
          }

          async function loadRecent() {
            try {
              const answer = await json(appPath(app, 'recentlogs?limit=' + RECENT_LINES));
              if (stopped) return;
              const batch = (answer.envelopes && answer.envelopes.batch) || [];
              const seen = new Set();
              for (const envelope of batch) {
                const parsed = parseEnvelope(envelope);
                if (!parsed) continue;
                if (parsed.lines) {
                  for (const line of parsed.lines) seen.add(line.timestamp + '\u0000' + line.header + line.text);
                }
                take(parsed);
              }
              if (answer.partial && answer.partial.length) {
                banner('zone', 'Zone ' + answer.partial.join(', ') + ' did not answer: recent lines held only there are missing.');
              }
              recentDone = true;
              for (const parsed of early) {
                const fresh = parsed.lines.filter((line) => !seen.has(line.timestamp + '\u0000' + line.header + line.text));
                if (fresh.length) take({ lines: fresh });
              }
              early = [];
            } catch (error) {
              recentDone = true;
              for (const parsed of early) take(parsed);
              early = [];
              if (error.status !== 401) say(problem(error), 'error');
            }
          }

          connect();
          loadRecent();
          box.focus();
          return {
            stop() {
              stopped = true;
              clearTimeout(retryTimer);
              if (frame) cancelAnimationFrame(frame);
              if (paintFrame) cancelAnimationFrame(paintFrame);
              if (socket) socket.close();
            },
          };
        }

        // ---------- drains ----------

        function drainsView(app) {
          const body = el('tbody');
          const urlInput = el('input', { name: 'url', id: 'drain-url', placeholder: 'syslog-tls://logs.example.com:6514',
            required: true, autocomplete: 'off', 'aria-label': 'Drain URL' });
          const nameInput = el('input', { name: 'name', id: 'drain-name', placeholder: 'name (optional)', autocomplete: 'off',
            'aria-label': 'Drain name' });
          const failure = el('p', { id: 'drain-error', class: 'form-error', role: 'alert' });
          const form = el('form', { class: 'inline', id: 'add-drain' }, urlInput, nameInput,
            el('button', { class: 'primary', type: 'submit', id: 'add-drain-button', text: 'Add drain' }));
          const note = el('p', { class: 'status', id: 'drains-status' });
          show(
            el('h1', {}, 'Drains of ', el('a', { href: appHash(app), id: 'tail-link', text: app })),
            el('table', { id: 'drains' },
              el('thead', {}, el('tr', {}, el('th', { text: 'Name' }), el('th', { text: 'URL' }), el('th', { text: 'State' }),
                el('th', { class: 'number', text: 'Sent' }), el('th', { class: 'number', text: 'Dropped' }),
                el('th', { class: 'number', text: 'Queued' }), el('th', { text: 'Added' }), el('th', { text: '' }))),
              body),
            note, el('h2', { text: 'Add a drain' }), form, failure);
          const confirming = new Set();  // drains whose Remove was clicked once

          async function refresh(stopped) {
            const [answer, status] = await Promise.all([json(appPath(app, 'drains')), json(appPath(app, 'drain-status'))]);
            if (stopped()) return;
            const byID = new Map(status.drains.map((drain) => [drain.id, drain]));
            body.replaceChildren(...answer.drains.map((drain) => drainRow(drain, byID.get(drain.id))));
            note.textContent = answer.drains.length === 0 ? 'This app has no drain.' :
              (status.partial.length ? 'Zone ' + status.partial.join(', ') + ' did not answer: its servers\u2019 counts are missing.' : '');
          }

          function drainRow(drain, numbers) {
            // Up, retrying (a server's last send failed: it holds the lines
            // and tries again), or starting (no server runs it yet).
            const state = numbers ? numbers.state : 'starting';
            const badge = el('span', { class: 'badge ' + (state === 'starting' ? 'unknown' : state), text: state,
              title: numbers ? 'run by ' + numbers.servers + ' buffer servers' : 'the buffer servers take new drains within seconds' });
            const remove = el('button', { type: 'button', class: 'danger', 'data-remove': drain.id, text: 'Remove' });
            if (confirming.has(drain.id)) remove.textContent = 'Remove for good?';
            remove.addEventListener('click', async () => {
              if (!confirming.has(drain.id)) {
                confirming.add(drain.id);
                remove.textContent = 'Remove for good?';
                return;
              }
              confirming.delete(drain.id);
              try {
                await api(appPath(app, 'drains/' + encodeURIComponent(drain.id)), { method: 'DELETE' });
                poller.now();
              } catch (error) {
                if (error.status !== 401) say(problem(error), 'error');
              }
            });
            return el('tr', { 'data-drain': drain.id, 'data-name': drain.name },
              el('td', { text: drain.name }), el('td', { class: 'url', text: drain.url }), el('td', {}, badge),
              el('td', { class: 'number', text: numbers && numbers.sent !== undefined ? formatNumber(numbers.sent) : '' }),
              el('td', { class: 'number', text: numbers && numbers.dropped !== undefined ? formatNumber(numbers.dropped) : '' }),
              el('td', { class: 'number', text: numbers && numbers.queued !== undefined ? formatNumber(numbers.queued) : '' }),
              el('td', { text: drain.created_at || '' }), el('td', {}, remove));
          }

          form.addEventListener('submit', async (event) => {
            event.preventDefault();
            failure.textContent = '';
            const request = { url: urlInput.value.trim() };
            if (nameInput.value.trim()) request.name = nameInput.value.trim();
            try {
              await api(appPath(app, 'drains'), { method: 'POST', headers: { 'Content-Type': 'application/json' },
                body: JSON.stringify(request) });
              urlInput.value = '';
              nameInput.value = '';
              poller.now();
            } catch (error) {
              if (error.status !== 401) failure.textContent = error.status === 404 ? problem(error) : error.message;
            }
          });

          const poller = poll(refresh);
          return poller;
        }

        // ---------- /metrics ----------

        // Prometheus' text format: [{name, labels, value}].
        function parseMetrics(text) {
          const samples = [];
          for (const line of text.split('\n')) {
            if (!line || line.startsWith('#')) continue;
            const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
            if (!match) continue;
            const labels = {};
            const labelPattern = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
            let label;
            while ((label = labelPattern.exec(match[2] || '')) !== null) {
              labels[label[1]] = label[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
            }
            samples.push({ name: match[1], labels, value: Number(match[3]) });
          }
          return samples;
        }

        async function metrics() { return parseMetrics(await (await api('metrics')).text()); }

        // ---------- the cluster ----------

        function clusterView() {
          const readiness = el('div', { id: 'controller-state' });
          const cards = el('div', { class: 'cards', id: 'throughput' });
          const zones = el('tbody');
          const drops = el('tbody');
          show(
            el('h1', { text: 'Cluster' }),
            el('h2', { text: 'This controller' }), readiness,
            el('h2', { text: 'Throughput' }), cards,
            el('h2', { text: 'Zones and buffer servers' }),
            el('table', { id: 'zones' }, el('thead', {}, el('tr', {}, el('th', { text: 'Zone' }), el('th', { text: 'State' }),
              el('th', { text: 'Buffer servers' }), el('th', { class: 'number', text: 'Controllers' }))), zones),
            el('h2', { text: 'Drops by reason' }),
            el('table', { id: 'drops' }, el('thead', {}, el('tr', {}, el('th', { text: 'Where' }), el('th', { text: 'Reason' }),
              el('th', { class: 'number', text: 'Total' }), el('th', { class: 'number', text: 'Per second' }))), drops),
            el('p', { class: 'status', text: 'From this controller\u2019s /metrics, every few seconds.' }));
          let previous = null;

          function card(id, label, value) {
            return el('div', { class: 'card', id }, el('div', { class: 'value', text: value }), el('div', { class: 'label', text: label }));
          }

          return poll(async (stopped) => {
            const [samples, ready, cluster] = await Promise.all([metrics(), fetch(url('readyz'), { cache: 'no-store' })
              .then(async (response) => ({ ok: response.ok, body: await response.json() })), json('cluster')]);
            const controllers = new Map(cluster.zones.map((zone) => [zone.zone, zone.controllers]));
            if (stopped()) return;
            const now = performance.now();
            const sum = (name) => samples.filter((sample) => sample.name === name).reduce((total, sample) => total + sample.value, 0);
            const totals = { in: sum('sluice_controller_envelopes_received_total'),
              out: sum('sluice_controller_stream_envelopes_sent_total') };
            const rate = (key, value) => previous && now > previous.at ?
              Math.max(0, (value - previous.values.get(key)) / ((now - previous.at) / 1000)) : null;
            const perSecond = (value) => value === null || Number.isNaN(value) ? '…' : value.toFixed(1);
            readiness.replaceChildren('Zone ' + cluster.zone + ' ', ready.ok ? el('span', { class: 'badge up', text: 'ready' }) :
              el('span', {}, el('span', { class: 'badge down', text: 'not ready' }), ' ' + (ready.body.reason || '')));
            cards.replaceChildren(
              card('lines-in', 'lines/s in (ingress)', perSecond(rate('in', totals.in))),
              card('lines-out', 'lines/s out (readers)', perSecond(rate('out', totals.out))),
              card('lines-in-total', 'lines in, total', formatNumber(totals.in)),
              card('lines-out-total', 'lines out to readers, total', formatNumber(totals.out)));

            const zoneNames = [...new Set(samples.filter((sample) => sample.name === 'sluice_controller_zone_servers')
              .map((sample) => sample.labels.zone))].sort();
            zones.replaceChildren(...zoneNames.map((zone) => {
              const of = (name) => samples.filter((sample) => sample.name === name && sample.labels.zone === zone)
                .reduce((total, sample) => total + sample.value, 0);
              const total = of('sluice_controller_zone_servers');
              const up = of('sluice_controller_zone_servers_up');
              const stateName = total > 0 && up >= total ? 'up' : (up > 0 ? 'partial' : 'down');
              const servers = samples.filter((sample) => sample.name === 'sluice_controller_buffer_server_up' && sample.labels.zone === zone)
                .sort((a, b) => a.labels.server.localeCompare(b.labels.server))
                .map((sample) => el('div', { class: 'server', 'data-server': sample.labels.server },
                  el('span', { class: 'badge ' + (sample.value >= 1 ? 'up' : 'down'), text: sample.value >= 1 ? 'up' : 'down' }),
                  ' ' + sample.labels.server));
              return el('tr', { 'data-zone': zone, 'data-state': stateName },
                el('td', { text: zone }),
                el('td', {}, el('span', { class: 'badge ' + stateName, text: stateName }), ' ' + up + ' of ' + total + ' answer'),
                el('td', {}, ...servers),
                // Its own controllers, as its servers see them connected.
                el('td', { class: 'number controllers', text: String(controllers.get(zone) || 0) }));
            }));

            const values = new Map([['in', totals.in], ['out', totals.out]]);
            const dropRows = samples.filter((sample) => /_dropped_total$/.test(sample.name) && !sample.labels.drain && !sample.labels.app)
              .map((sample) => {
                const key = sample.name + '|' + (sample.labels.reason || '');
                const value = (values.get(key) || 0) + sample.value;
                values.set(key, value);
                return key;
              });
            drops.replaceChildren(...[...new Set(dropRows)].sort().map((key) => {
              const [name, reason] = key.split('|');
              const where = name.replace(/^sluice_/, '').replace(/_total$/, '').replace(/_/g, ' ');
              return el('tr', { 'data-metric': name, 'data-reason': reason },
                el('td', { text: where }), el('td', { text: reason || '' }),
                el('td', { class: 'number', text: formatNumber(values.get(key)) }),
                el('td', { class: 'number', text: perSecond(rate(key, values.get(key))) }));
            }));
            previous = { at: now, values };
          });
        }

        // ---------- start ----------

        document.getElementById('sign-out').addEventListener('click', () => {
          state.token = null;
          sessionStorage.removeItem(TOKEN_KEY);
          stopView();
          signIn('Signed out.');
        });
        // A sign-in link pasted into an open tab changes only the fragment.
        window.addEventListener('hashchange', () => {
          if (location.hash.startsWith('#login=')) takeLoginLink().then(route); else route();
        });
        takeLoginLink().then(route);
        })();

        """#
}
