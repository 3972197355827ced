//! The home's gateway in front of a real biome: a WebSocket passes through it both ways, a
//! 100 MB upload is streamed to the service, a service that dies mid-request is a 502 naming
//! it, and a project's `[gateway] port` is listened on.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{component, Sandbox};

/// One service: `/ws` echoes WebSocket text frames, `/upload` answers how many body bytes it
/// read, `/die` exits without answering, `/` says hello.
fn relay(extra_toml: &str) -> Sandbox {
    Sandbox::with_files(&[
        (
            "sandpit.toml",
            &format!(
                r#"
[project]
name = "relay"
{extra_toml}
[services.echo]
path = "echo"
run = "python3 -u echo.py"
health = "/"
"#
            ),
        ),
        (
            "echo/echo.py",
            r#"import base64, hashlib, http.server, os, struct
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, body):
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        if self.path == "/die":
            os._exit(1)
        if self.path != "/ws":
            return self.answer(b"hello")
        accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + GUID).encode()).digest()).decode()
        self.send_response(101); self.send_header("Upgrade", "websocket"); self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept); self.end_headers(); self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2: return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            mask = self.rfile.read(4)
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 8: return
            reply = b"echo: " + payload
            self.wfile.write(bytes([0x81, len(reply)]) + reply); self.wfile.flush()
    def do_POST(self):
        left, total = int(self.headers["Content-Length"]), 0
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk: break
            total += len(chunk); left -= len(chunk)
        self.answer(str(total).encode())
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
        ),
    ])
}

fn gateway_of(status: &serde_json::Value) -> u16 {
    let public = component(status, "echo")["public_url"]
        .as_str()
        .unwrap_or_else(|| panic!("echo has a public URL: {status:#}"));
    public.rsplit(':').next().unwrap().parse().unwrap()
}

fn client(host: &str, port: u16) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// A masked client text frame (RFC 6455), payload under 126 bytes.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[test]
fn websockets_and_large_uploads_pass_through_the_gateway_to_a_biome() {
    let sandbox = relay("");
    let up = sandbox.json(&["up", "alice"]);
    let port = gateway_of(&up);
    let host = "echo.alice.relay.localhost";

    // A WebSocket: the upgrade reaches the service, frames go both ways.
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        socket,
        "GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the service's accept key comes back: {head}"
    );
    for message in ["first", "second message"] {
        socket.write_all(&text_frame(message.as_bytes())).unwrap();
        let mut header = [0u8; 2];
        socket.read_exact(&mut header).unwrap();
        assert_eq!(header[0], 0x81);
        let mut payload = vec![0u8; usize::from(header[1] & 0x7F)];
        socket.read_exact(&mut payload).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&payload),
            format!("echo: {message}")
        );
    }
    drop(socket);

    // 100 MB up, streamed to the service, which counts every byte.
    let body = vec![b'x'; 100 * 1024 * 1024];
    let response = client(host, port)
        .post(format!("http://{host}:{port}/upload"))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().unwrap(), (100 * 1024 * 1024).to_string());

    // The service dies mid-request: a 502 that names it and says why.
    let response = client(host, port)
        .get(format!("http://{host}:{port}/die"))
        .send()
        .unwrap();
    let code = response.status().as_u16();
    let text = response.text().unwrap();
    assert_eq!(code, 502, "{text}");
    assert!(text.contains("service `echo` of biome `alice`"), "{text}");
}

#[test]
fn a_projects_gateway_port_is_listened_on_and_named_in_public_urls() {
    let port = {
        // A free port outside the kernel's ephemeral range is not needed here: the test takes
        // one the kernel offers and frees it at once.
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let sandbox = relay(&format!("\n[gateway]\nport = {port}\n"));
    let up = sandbox.json(&["up", "alice"]);
    assert_eq!(gateway_of(&up), port, "{up:#}");
    let host = "echo.alice.relay.localhost";
    let response = client(host, port)
        .get(format!("http://{host}:{port}/"))
        .send()
        .unwrap();
    assert_eq!(response.text().unwrap(), "hello");
    let doctor = sandbox.ok(&["doctor"]);
    assert!(doctor.contains("gateway"), "{doctor}");
    assert!(doctor.contains(&port.to_string()), "{doctor}");

    // A port someone else holds: the `up` fails saying so, and nothing changes.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let toml = std::fs::read_to_string(sandbox.repo.join("sandpit.toml")).unwrap();
    sandbox.write(
        "sandpit.toml",
        &toml.replace(&format!("port = {port}"), &format!("port = {taken}")),
    );
    sandbox.commit("another gateway port");
    let refused = sandbox.fails(&["up", "alice"], 1);
    assert!(refused.contains(&format!("port {taken}")), "{refused}");
    assert!(refused.contains("[gateway] port"), "{refused}");
    assert_eq!(sandbox.status("alice")["state"], "healthy");
}
