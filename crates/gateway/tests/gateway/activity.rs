//! The owner's activity lives exactly as long as the response: held while the body is being
//! sent, released once it has been sent, or when the client gives up.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http_body_util::BodyExt as _;
use hyper::body::Bytes;
use hyper::StatusCode;

use crate::support::{empty, eventually, generous, get, Backend, Gateway, TableRoutes, GUARD, WEB};

#[tokio::test]
async fn activity_is_held_until_the_response_body_has_been_sent() {
    let backend = Backend::start("web").await;
    let routes = Arc::new(TableRoutes::to(WEB, &backend));
    let gateway = Gateway::start(routes.clone(), generous()).await;
    let in_flight = || routes.in_flight.load(Ordering::SeqCst);
    let mut client = gateway.client().await;
    let drip = backend.drip();
    let response = client.send(get(WEB, "/drip").body(empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The head arrived; the body has not.
    assert_eq!(in_flight(), 1);
    let mut body = response.into_body();
    drip.send(Bytes::from_static(b"first")).await.unwrap();
    let frame = tokio::time::timeout(GUARD, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_data().unwrap(), "first");
    assert_eq!(in_flight(), 1, "released before the body ended");
    drop(drip);
    let end = tokio::time::timeout(GUARD, body.frame()).await.unwrap();
    assert!(end.is_none(), "the body ends when the backend's does");
    eventually("the activity is released", || in_flight() == 0).await;
    // Next request on the same connection: counted again, released again.
    assert_eq!(client.get(WEB, "/").await.body, "hello from web");
    eventually("the second activity is released", || in_flight() == 0).await;
}

#[tokio::test]
async fn activity_is_released_when_the_client_leaves_mid_body() {
    let backend = Backend::start("web").await;
    let routes = Arc::new(TableRoutes::to(WEB, &backend));
    let gateway = Gateway::start(routes.clone(), generous()).await;
    let mut client = gateway.client().await;
    let drip = backend.drip();
    let response = client.send(get(WEB, "/drip").body(empty()).unwrap()).await;
    assert_eq!(routes.in_flight.load(Ordering::SeqCst), 1);
    drop(response);
    drop(client);
    // The backend keeps the body open; the gateway notices the client is gone when it next
    // writes, and gives the response up.
    let mut sent = 0;
    eventually("the abandoned activity is released", || {
        if routes.in_flight.load(Ordering::SeqCst) == 0 {
            return true;
        }
        if sent < 1000 && drip.try_send(Bytes::from_static(b"more")).is_ok() {
            sent += 1;
        }
        false
    })
    .await;
}
