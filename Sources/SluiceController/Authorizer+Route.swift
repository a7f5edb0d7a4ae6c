import NIOCore
import NIOHTTP1
import SluiceAuth

extension Authorizer {
    /// Checks a request's token for a route, on `loop`: the token from
    /// `Authorization: Bearer`, or `?access_token=` where the route takes
    /// one. The HTTP handler and the websocket upgrader both ask here.
    func check(_ route: APIRoute, _ head: HTTPRequestHead, on loop: any EventLoop) -> EventLoopFuture<AccessOutcome> {
        let token = APIRoute.token(
            authorization: head.headers["Authorization"], uri: head.uri, takesQueryToken: route.takesQueryToken)
        let promise = loop.makePromise(of: AccessOutcome.self)
        promise.completeWithTask { await self.authorize(token: token, resource: route.resource) }
        return promise.futureResult
    }
}
