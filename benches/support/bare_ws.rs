//! The bare baseline of the socket-memory figures (`benches/sockets.rs`,
//! `benches/cluster.rs`): actix-ws's own echo example and nothing else, run as a child
//! process of the bench. Prints `PORT n` once listening; stops when its stdin closes.

use futures_util::StreamExt;

/// Serves until stdin closes.
pub async fn serve_bare() {
    use actix_web::{App, HttpRequest, HttpServer, web};

    async fn ws(
        req: HttpRequest,
        body: web::Payload,
    ) -> actix_web::Result<actix_web::HttpResponse> {
        let (response, mut session, mut stream) = actix_ws::handle(&req, body)?;
        actix_web::rt::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let sent = match msg {
                    actix_ws::Message::Text(text) => session.text(text).await,
                    actix_ws::Message::Ping(bytes) => session.pong(&bytes).await,
                    actix_ws::Message::Close(_) => break,
                    _ => Ok(()),
                };
                if sent.is_err() {
                    return;
                }
            }
            let _ = session.close(None).await;
        });
        Ok(response)
    }

    let server = HttpServer::new(|| App::new().route("/ws/v1/websocket", web::get().to(ws)))
        .bind(("127.0.0.1", 0))
        .expect("bind");
    let port = server.addrs()[0].port();
    let server = server.run();
    println!("PORT {port}");
    let handle = server.handle();
    actix_web::rt::spawn(server);
    wait_for_stdin_close().await;
    handle.stop(false).await;
}

/// Returns once the parent closed this process's stdin (its signal to stop).
pub async fn wait_for_stdin_close() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).map_or(0, |n| n) > 0 {
            line.clear();
        }
    })
    .await;
}
