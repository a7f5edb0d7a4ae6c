/// The console's style sheet (`ui/console.css`).
enum ConsoleStyle {
    static let source = #"""
        :root { --fg: #1d2330; --muted: #667085; --bg: #ffffff; --panel: #f5f6f8; --line: #e3e6eb;
          --accent: #1f5fbf; --ok: #16794a; --warn: #a15c00; --bad: #c0262d; --err: #c0262d;
          font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
        * { box-sizing: border-box; }
        body { margin: 0; display: flex; flex-direction: column; height: 100vh; }
        header.top { display: flex; align-items: center; gap: 1.25rem; padding: .6rem 1rem; background: #12263f; color: #fff; }
        header.top a { color: #dbe7ff; text-decoration: none; }
        header.top a.brand { font-weight: 700; color: #fff; letter-spacing: .02em; }
        header.top nav { display: flex; gap: 1rem; }
        header.top nav a.current { color: #fff; border-bottom: 2px solid #7fb0ff; }
        #who { margin-left: auto; color: #b8c7de; font-size: .85rem; }
        button { font: inherit; padding: .3rem .75rem; border: 1px solid #b8c0cc; border-radius: 4px; background: #fff; cursor: pointer; }
        button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
        button.danger { color: var(--bad); border-color: var(--bad); }
        input, select, textarea { font: inherit; padding: .3rem .45rem; border: 1px solid #b8c0cc; border-radius: 4px; }
        input.invalid { border-color: var(--bad); background: #fff4f4; }
        main { flex: 1; min-height: 0; overflow: auto; padding: 1rem; }
        main.tail-view { display: flex; flex-direction: column; padding: .5rem 1rem; overflow: hidden; }
        h1 { font-size: 1.3rem; margin: .2rem 0 .8rem; }
        h2 { font-size: 1.05rem; margin: 1.2rem 0 .5rem; }
        .muted { color: var(--muted); }
        #message { margin: .6rem 1rem 0; padding: .6rem .8rem; border-radius: 4px; background: #fff4e5; border: 1px solid #f0c27a; }
        #message.error { background: #fdecec; border-color: #f1a7aa; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); font-size: .92rem; }
        th { background: var(--panel); font-weight: 600; }
        td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
        .badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .8rem; font-weight: 600; }
        .badge.up { background: #e3f5ea; color: var(--ok); }
        .badge.partial, .badge.retrying, .badge.unknown { background: #fff1dc; color: var(--warn); }
        .badge.down { background: #fdecec; color: var(--bad); }
        form.sign-in { max-width: 38rem; display: flex; flex-direction: column; gap: .6rem; }
        form.sign-in textarea { min-height: 7rem; font-family: ui-monospace, monospace; font-size: .8rem; }
        form.inline { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .5rem 0; }
        form.inline input[name=url] { min-width: 28rem; }
        .form-error { color: var(--bad); }
        .toolbar { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; padding: .3rem 0 .5rem; }
        .toolbar input#filter { min-width: 18rem; }
        .toolbar .spacer { flex: 1; }
        #banners { display: flex; flex-direction: column; gap: .3rem; }
        .banner { display: flex; gap: .6rem; align-items: baseline; padding: .4rem .7rem; border-radius: 4px; font-size: .88rem;
          background: #fff4e5; border: 1px solid #f0c27a; }
        .banner.zone, .banner.server_lost, .banner.disconnected { background: #eef3fd; border-color: #9bb8ea; }
        .banner .kind { font-weight: 700; text-transform: uppercase; font-size: .75rem; letter-spacing: .04em; }
        .banner .count { color: var(--muted); }
        .banner button { margin-left: auto; padding: 0 .45rem; }
        #trimmed { font-size: .82rem; color: var(--muted); padding: .2rem 0; }
        .lines { flex: 1; min-height: 0; overflow: auto; position: relative; background: #0f1724; color: #d7dee9; border-radius: 4px;
          font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
        .lines .rows { position: absolute; top: 0; left: 0; min-width: 100%; padding: 0 .6rem; will-change: transform; }
        .line { height: 18px; line-height: 18px; white-space: pre; }
        .line .meta { color: #8da2bf; }
        .line.err, .line.err .meta { color: #ff6b6b; }
        #jump { position: absolute; right: 2.5rem; bottom: 2.5rem; }
        .status { font-size: .82rem; color: var(--muted); padding: .3rem 0; }
        .cards { display: flex; flex-wrap: wrap; gap: .8rem; }
        .card { background: var(--panel); border-radius: 6px; padding: .7rem 1rem; min-width: 11rem; }
        .card .value { font-size: 1.4rem; font-weight: 700; font-variant-numeric: tabular-nums; }
        .card .label { color: var(--muted); font-size: .82rem; }
        """#
}
