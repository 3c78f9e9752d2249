//! WebSocket test client speaking Phoenix v2 frames, and ways to make a feed item appear.
//! Every wait has a deadline and fails the test with what was seen instead.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{PUBLIC_KEY, TestApp, user_token};

/// How long any single wait for a frame may take before the test fails.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(10);

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A connected Phoenix client.
pub struct WsClient {
    pub socket: Socket,
    next_ref: u64,
}

impl TestApp {
    /// `ws://…/ws/v1/websocket?<query>`.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/ws/v1/websocket?{query}", self.port)
    }

    /// Connects as a browser would: public key + `user`'s token, Phoenix's query shape.
    pub async fn ws_connect(&self, user: &str) -> WsClient {
        let token = user_token(user, json!(null));
        self.ws_connect_query(&format!(
            "user_token={token}&api_key={PUBLIC_KEY}&&vsn=2.0.0"
        ))
        .await
        .expect("socket upgrade accepted")
    }

    /// Connects with a raw query; `Err(status)` when the upgrade is refused.
    pub async fn ws_connect_query(&self, query: &str) -> Result<WsClient, (u16, Value)> {
        match tokio_tungstenite::connect_async(self.ws_url(query)).await {
            Ok((socket, _)) => Ok(WsClient::new(socket)),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                let status = res.status().as_u16();
                let body = res
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err((status, body))
            }
            Err(e) => panic!("socket connect failed: {e}"),
        }
    }

    /// The default channel's UUID (what the SDKs put in topics).
    pub async fn channel_id(&self) -> String {
        self.state
            .store
            .channel_id("in-app-feed".into())
            .await
            .expect("channel lookup")
            .expect("default channel exists")
    }
}

impl WsClient {
    pub fn new(socket: Socket) -> Self {
        WsClient {
            socket,
            next_ref: 1,
        }
    }

    fn take_ref(&mut self) -> String {
        let r = self.next_ref.to_string();
        self.next_ref += 1;
        r
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("frame sent");
    }

    /// Sends `[join_ref, ref, topic, event, payload]`; returns the ref used.
    pub async fn push(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        let r = self.take_ref();
        let frame = json!([join_ref, r, topic, event, payload]);
        self.send_text(&frame.to_string()).await;
        r
    }

    /// Joins `topic`; returns (join_ref, reply payload).
    pub async fn join(&mut self, topic: &str, params: Value) -> (String, Value) {
        let r = self.take_ref();
        let frame = json!([r, r, topic, "phx_join", params]);
        self.send_text(&frame.to_string()).await;
        let reply = self.reply_to(&r).await;
        (r, reply)
    }

    /// Joins and asserts the reply is ok, then consumes the initial counts push.
    /// Returns (join_ref, counts push payload).
    pub async fn join_ok(&mut self, topic: &str, params: Value) -> (String, Value) {
        let (join_ref, reply) = self.join(topic, params).await;
        assert_eq!(
            reply,
            json!({"status": "ok", "response": {}}),
            "join of {topic} refused"
        );
        let push = self.next_event("new-message").await;
        assert_eq!(
            push[0],
            json!(join_ref),
            "initial push carries the join_ref"
        );
        (join_ref, push[4].clone())
    }

    /// The next frame, parsed; fails the test on close or deadline.
    pub async fn next_frame(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(FRAME_DEADLINE, self.socket.next())
                .await
                .expect("a frame within the deadline")
                .expect("socket still open")
                .expect("socket read ok");
            match msg {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).expect("frame is JSON");
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The `phx_reply` to `msg_ref`; returns its payload. Pushes before it are skipped.
    pub async fn reply_to(&mut self, msg_ref: &str) -> Value {
        loop {
            let frame = self.next_frame().await;
            if frame[3] == "phx_reply" && frame[1] == json!(msg_ref) {
                return frame[4].clone();
            }
        }
    }

    /// The next frame whose event is `event`.
    pub async fn next_event(&mut self, event: &str) -> Value {
        loop {
            let frame = self.next_frame().await;
            if frame[3] == event {
                return frame;
            }
        }
    }

    /// Waits for the server's close frame; frames before it are collected and returned.
    pub async fn closed(&mut self) -> (Option<CloseFrame>, Vec<Value>) {
        let mut seen = Vec::new();
        loop {
            let next = tokio::time::timeout(FRAME_DEADLINE, self.socket.next())
                .await
                .expect("the socket closes within the deadline");
            match next {
                Some(Ok(Message::Close(frame))) => return (frame, seen),
                Some(Ok(Message::Text(text))) => {
                    seen.push(serde_json::from_str(text.as_str()).unwrap_or(Value::Null));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return (None, seen),
            }
        }
    }

    /// Asserts nothing arrives for a short while (used only after a positive signal has
    /// proven the server already processed what could have caused a frame).
    pub async fn assert_silent(&mut self, within: Duration) {
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(within, self.socket.next()).await
        {
            panic!("unexpected frame: {text}");
        }
    }
}

/// A feed item to deliver through the real store and hub (what the engine does after a
/// run step commits), for tests that need exact tenants, sources and data.
pub struct Item {
    pub recipient: tidings::model::RecipientRef,
    pub tenant: Option<&'static str>,
    pub workflow: &'static str,
    pub categories: Vec<String>,
    pub data: Value,
}

impl Item {
    pub fn for_user(user: &str) -> Self {
        Item {
            recipient: tidings::model::RecipientRef::User(user.into()),
            tenant: None,
            workflow: "new-comment",
            categories: vec![],
            data: json!({}),
        }
    }

    pub fn tenant(mut self, tenant: &'static str) -> Self {
        self.tenant = Some(tenant);
        self
    }
}

impl TestApp {
    /// Commits `item` as a message and publishes it, as the engine does after commit.
    pub async fn deliver(&self, item: Item) -> String {
        use tidings::store::messages::NewMessage;
        let channel_id = self.channel_id().await;
        let id = tidings::ids::message_id();
        let run = tidings::ids::uuid();
        let message = NewMessage {
            id: id.clone(),
            channel_id,
            recipient: item.recipient,
            tenant: item.tenant.map(str::to_owned),
            workflow_key: item.workflow.into(),
            workflow_version_id: tidings::ids::uuid(),
            workflow_categories: item.categories,
            workflow_run_id: run.clone(),
            workflow_recipient_run_id: run,
            step_ref: "in_app_feed_1".into(),
            actors: vec![],
            data: item.data.into(),
            blocks: json!([]).into(),
            inserted_at: tidings::clock::Clock::system().now(),
            batch: None,
            expires_at: None,
            pinned_at: None,
        };
        let row = self
            .state
            .store
            .insert_messages(vec![message])
            .await
            .expect("message stored")
            .pop()
            .expect("message is new");
        self.state.hub.publish(&[row]);
        id
    }
}
