//! WebSocket (any `Upgrade:`) passes through: a real WebSocket client and server exchange
//! messages through the gateway; the activity is held while the tunnel is open.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use sandpit_gateway::GatewayConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{eventually, generous, Gateway, TableRoutes, Target, GUARD};

const CHAT: &str = "chat.alice.shop.localhost";

/// A WebSocket server that echoes every text message, prefixed with `echo: `.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Text(text) = message {
                        let reply = format!("echo: {text}");
                        if socket.send(Message::text(reply)).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn gateway_to_echo(config: GatewayConfig) -> (Gateway, Arc<TableRoutes>) {
    let routes = Arc::new(TableRoutes::default().with(
        CHAT,
        Target::Backend {
            addr: echo_server().await,
            component: "service `chat`".to_owned(),
        },
    ));
    (Gateway::start(routes.clone(), config).await, routes)
}

async fn connect(gateway: &Gateway) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let stream = TcpStream::connect(gateway.addr).await.unwrap();
    let url = format!("ws://{CHAT}:{}/socket", gateway.addr.port());
    let (socket, response) =
        tokio::time::timeout(GUARD, tokio_tungstenite::client_async(url, stream))
            .await
            .expect("the handshake completes")
            .expect("the upgrade is accepted");
    assert_eq!(response.status(), 101);
    socket
}

#[tokio::test]
async fn websocket_messages_pass_through_both_ways() {
    let (gateway, routes) = gateway_to_echo(generous()).await;
    let mut socket = connect(&gateway).await;
    for text in ["hello", "second message", &"x".repeat(100_000)] {
        socket.send(Message::text(text)).await.unwrap();
        let reply = tokio::time::timeout(GUARD, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reply, Message::text(format!("echo: {text}")));
    }
    // The tunnel is one request in flight for the owner until it closes.
    assert_eq!(routes.in_flight.load(Ordering::SeqCst), 1);
    socket.close(None).await.unwrap();
    drop(socket);
    eventually("the tunnel's activity is released", || {
        routes.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
}

#[tokio::test]
async fn an_open_websocket_outlives_the_idle_timeout_but_not_shutdown() {
    // A tunnel is not an idle keep-alive connection: the idle timeout must not cut it.
    let config = GatewayConfig {
        idle_timeout: std::time::Duration::from_millis(50),
        ..generous()
    };
    let (mut gateway, routes) = gateway_to_echo(config).await;
    let mut socket = connect(&gateway).await;
    for round in 0..3 {
        // Each round waits past the idle timeout on a quiet tunnel, then talks again.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        socket
            .send(Message::text(format!("{round}")))
            .await
            .unwrap();
        let reply = tokio::time::timeout(GUARD, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reply, Message::text(format!("echo: {round}")));
    }
    gateway.shut_down();
    gateway.stopped().await.unwrap();
    let ended = tokio::time::timeout(GUARD, socket.next())
        .await
        .expect("the tunnel closes");
    assert!(!matches!(ended, Some(Ok(Message::Text(_)))), "{ended:?}");
    assert_eq!(routes.in_flight.load(Ordering::SeqCst), 0);
}
