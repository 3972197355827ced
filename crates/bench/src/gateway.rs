//! The gateway against nginx: requests/s and p50/p99 latency of the sandpit gateway (the
//! library, with a route table answering one backend for `web.alice.shop.localhost`) and of
//! nginx (Debian's package) proxying the same backend, each loaded in turn by `wrk` in the
//! same run.
//!
//! Fair settings, on both sides:
//! - the same number of workers (one each, then one per core; the machine's cores are shared
//!   with `wrk` and the backend): `worker_processes` for nginx; for the gateway, as many
//!   single-threaded loops on one `SO_REUSEPORT` port (nginx's own shape), and then, for
//!   comparison, one multi-threaded tokio runtime with as many worker threads;
//! - keep-alive on both sides with no per-connection request cap (nginx's `keepalive_requests`
//!   raised from its default 1,000, client and upstream side; the gateway has none), an
//!   upstream pool (`keepalive 64`, `proxy_http_version 1.1`, `Connection ""`);
//! - the same headers added (`Host` kept, `X-Forwarded-For/-Proto/-Host`), no access log;
//!   nginx's response buffering stays at its default (for 100-byte answers it costs nothing);
//! - the gateway's route table hands out an activity per request, as the daemon's will.
//!
//! The backend is a tiny hyper server on a runtime of its own (one thread), answering ~100
//! bytes. Figures, not pass/fail: the goal is a ratio gateway/nginx >= 1.0.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use sandpit_gateway::{GatewayConfig, HostName, Route, RouteFuture, Routes};

const HOST: &str = "web.alice.shop.localhost";
/// The backend's answer: about 100 bytes of body.
const HELLO: &str = "hello from the benchmark backend: a small answer, about one hundred bytes long, as a health check\n";
const WRK_THREADS: usize = 2;
const WRK_CONNECTIONS: usize = 32;
const WRK_SECONDS: u64 = 10;
const WARM_UP_SECONDS: u64 = 2;

pub fn run(scratch: &Path) -> anyhow::Result<()> {
    for tool in ["nginx", "wrk"] {
        if Command::new(tool).arg("-v").output().is_err() {
            println!(
                "\n== gateway: not measured, `{tool}` is not installed (`apt-get install nginx wrk`; scripts/bench.sh does)"
            );
            return Ok(());
        }
    }
    let nginx_version = Command::new("nginx").arg("-v").output()?;
    let nginx_version = String::from_utf8_lossy(&nginx_version.stderr)
        .trim()
        .trim_start_matches("nginx version: ")
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "\n== gateway: the sandpit gateway against {nginx_version} proxying the same ~{}-byte backend; \
         wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s, {cores} cores",
        HELLO.len()
    );
    let backend_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let backend = backend_runtime.block_on(start_backend())?;
    let mut workers = vec![1];
    if cores > 1 {
        workers.push(cores);
    }
    for count in workers {
        let theirs = nginx_run(scratch, backend, count)?;
        let loops = gateway_run(backend, Shape::Loops(count))?;
        let pooled = gateway_run(backend, Shape::MultiThread(count))?;
        println!("  {count} worker(s) each:");
        print_load("nginx", &theirs);
        for (label, ours) in [
            (format!("gateway, {count} loop(s)"), &loops),
            (format!("gateway, {count}-thread runtime"), &pooled),
        ] {
            print_load(&label, ours);
            println!(
                "      ratio to nginx: {:.2}x requests/s (goal >= 1.0: {}), p50 {:.2}x, p99 {:.2}x (latency: lower is better)",
                ours.per_second / theirs.per_second,
                if ours.per_second >= theirs.per_second { "met" } else { "MISSED" },
                ours.p50.as_secs_f64() / theirs.p50.as_secs_f64(),
                ours.p99.as_secs_f64() / theirs.p99.as_secs_f64(),
            );
        }
    }
    drop(backend_runtime);
    Ok(())
}

/// What `wrk` measured against one proxy.
struct Load {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    requests: u64,
}

fn print_load(label: &str, load: &Load) {
    println!(
        "    {label:<30} {:>9.0} req/s   p50 {:>6.3} ms   p99 {:>6.3} ms   ({} requests)",
        load.per_second,
        ms(load.p50),
        ms(load.p99),
        load.requests
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The backend both proxies forward to: `HELLO` for any request, keep-alive.
async fn start_backend() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    let mut response =
                        hyper::Response::new(Full::new(Bytes::from_static(HELLO.as_bytes())));
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("text/plain"),
                    );
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// One host to the backend, with an activity per request that counts requests in flight.
struct BenchRoutes {
    backend: SocketAddr,
    in_flight: Arc<AtomicUsize>,
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Routes for BenchRoutes {
    fn route(&self, host: &HostName) -> RouteFuture {
        let route = match host {
            HostName::Service {
                service,
                biome,
                project,
            } if service == "web" && biome == "alice" && project == "shop" => {
                self.in_flight.fetch_add(1, Ordering::Relaxed);
                Route::Backend {
                    addr: self.backend,
                    component: "service `web` of biome `alice` (project `shop`)".to_owned(),
                    activity: Some(Box::new(InFlight(Arc::clone(&self.in_flight)))),
                }
            }
            other => Route::Unknown {
                message: format!("no service answers at `{other}`"),
                valid_hosts: vec![HOST.to_owned()],
            },
        };
        Box::pin(async move { route })
    }
}

/// How the gateway's workers are laid out.
#[derive(Clone, Copy)]
enum Shape {
    /// As nginx's workers: N threads, each a single-threaded runtime running `serve` on a
    /// listener of its own, all bound to one port with `SO_REUSEPORT` (the kernel spreads the
    /// connections), so a connection and its backend connections never change threads.
    Loops(usize),
    /// One `serve` on a multi-threaded (work-stealing) runtime of N worker threads, as a
    /// daemon that runs everything on one runtime would.
    MultiThread(usize),
}

/// The gateway laid out as `shape`, loaded by wrk.
fn gateway_run(backend: SocketAddr, shape: Shape) -> anyhow::Result<Load> {
    let routes = Arc::new(BenchRoutes {
        backend,
        in_flight: Arc::default(),
    });
    let config = GatewayConfig {
        max_connections: 1024,
        ..GatewayConfig::default()
    };
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (loops, threads) = match shape {
        Shape::Loops(count) => (count, 1),
        Shape::MultiThread(count) => (1, count),
    };
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (bound_tx, bound_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    let workers: Vec<_> = (0..loops)
        .map(|_| {
            let (routes, config, mut stopping, bound) = (
                Arc::clone(&routes),
                config.clone(),
                stopping.clone(),
                bound_tx.clone(),
            );
            std::thread::spawn(move || -> anyhow::Result<()> {
                let runtime = if threads == 1 {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                } else {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(threads)
                        .enable_all()
                        .build()?
                };
                runtime.block_on(async move {
                    let listener = match reuse_port_listener(addr) {
                        Ok(listener) => {
                            let _ = bound.send(Ok(()));
                            listener
                        }
                        Err(error) => {
                            let _ = bound.send(Err(error));
                            return Ok(());
                        }
                    };
                    sandpit_gateway::serve(
                        listener,
                        routes as Arc<dyn Routes>,
                        config,
                        async move {
                            let _ = stopping.wait_for(|stop| *stop).await;
                        },
                    )
                    .await?;
                    Ok(())
                })
            })
        })
        .collect();
    drop(bound_tx);
    for bound in bound_rx.iter().take(loops) {
        bound.with_context(|| format!("cannot listen at {addr}"))?;
    }
    let load = load(addr);
    let _ = stop.send(true);
    for worker in workers {
        worker.join().expect("a gateway worker panicked")?;
    }
    if routes.in_flight.load(Ordering::Relaxed) != 0 {
        bail!("the gateway still holds activities after its requests ended");
    }
    load
}

/// A listener at `addr` that other listeners may share (`SO_REUSEPORT`).
fn reuse_port_listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// A running nginx, stopped (and waited for) when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: graceful shutdown of master and workers.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGQUIT,
        );
        let _ = self.0.wait();
    }
}

/// nginx with `workers` worker processes proxying to the backend, loaded by wrk.
fn nginx_run(scratch: &Path, backend: SocketAddr, workers: usize) -> anyhow::Result<Load> {
    let prefix = scratch.join(format!("nginx-{workers}"));
    std::fs::create_dir_all(prefix.join("logs"))?;
    let port = free_port()?;
    let config = nginx_config(&prefix, backend, port, workers);
    let config_path = prefix.join("nginx.conf");
    std::fs::write(&config_path, config)?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&config_path)
        .arg("-e")
        .arg(prefix.join("logs/error.log"))
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start nginx")?;
    let nginx = Nginx(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr).with_context(|| {
        format!(
            "nginx did not start listening; its log: {}",
            std::fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default()
        )
    })?;
    let load = load(addr);
    drop(nginx);
    load
}

/// nginx's configuration: see the module documentation for why each setting.
fn nginx_config(prefix: &Path, backend: SocketAddr, port: u16, workers: usize) -> String {
    let prefix = prefix.display();
    format!(
        r#"daemon off;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 30s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream backend {{
        server {backend};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
    }}
}}
"#
    )
}

/// A loopback port free now (the kernel's choice, released at once for nginx to bind).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("nothing listens at {addr}")
}

/// Checks the proxy answers the backend's body, warms it up, then measures it with wrk.
fn load(addr: SocketAddr) -> anyhow::Result<Load> {
    check_answer(addr)?;
    wrk(addr, WARM_UP_SECONDS)?;
    wrk(addr, WRK_SECONDS)
}

/// One plain request through the proxy must come back with the backend's body.
fn check_answer(addr: SocketAddr) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    if !answer.starts_with("HTTP/1.1 200") || !answer.ends_with(HELLO) {
        bail!("{addr} did not answer the backend's hello: {answer}");
    }
    Ok(())
}

fn wrk(addr: SocketAddr, seconds: u64) -> anyhow::Result<Load> {
    let output = crate::run_for_output(
        Command::new("wrk")
            .arg(format!("-t{WRK_THREADS}"))
            .arg(format!("-c{WRK_CONNECTIONS}"))
            .arg(format!("-d{seconds}s"))
            .arg("--latency")
            .args(["-H", &format!("Host: {HOST}")])
            .arg(format!("http://{addr}/")),
    )?;
    parse_wrk(&String::from_utf8_lossy(&output.stdout))
}

/// Reads wrk's report: `Requests/sec:`, the `50%` and `99%` lines of its latency
/// distribution, `N requests in …`; any non-2xx answer or socket error fails the run.
fn parse_wrk(report: &str) -> anyhow::Result<Load> {
    let mut per_second = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut requests = None;
    for line in report.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => per_second = value.parse::<f64>().ok(),
            ["50%", value] => p50 = parse_latency(value),
            ["99%", value] => p99 = parse_latency(value),
            [count, "requests", "in", ..] => requests = count.parse::<u64>().ok(),
            ["Non-2xx", ..] | ["Socket", "errors:", ..] => {
                bail!("wrk saw failures: {line}\n{report}")
            }
            _ => {}
        }
    }
    match (per_second, p50, p99, requests) {
        (Some(per_second), Some(p50), Some(p99), Some(requests)) => Ok(Load {
            per_second,
            p50,
            p99,
            requests,
        }),
        _ => bail!("cannot read wrk's report:\n{report}"),
    }
}

/// `612.00us`, `1.23ms`, `2.00s`.
fn parse_latency(value: &str) -> Option<Duration> {
    let (number, scale) = if let Some(number) = value.strip_suffix("us") {
        (number, 1e-6)
    } else if let Some(number) = value.strip_suffix("ms") {
        (number, 1e-3)
    } else if let Some(number) = value.strip_suffix('s') {
        (number, 1.0)
    } else {
        return None;
    };
    number
        .parse::<f64>()
        .ok()
        .map(|number| Duration::from_secs_f64(number * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reports_are_read() {
        let report = "Running 10s test @ http://127.0.0.1:8080/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   452.11us  301.20us  12.00ms   91.00%
    Req/Sec    35.10k     2.01k   40.00k    70.00%
  Latency Distribution
     50%  400.00us
     75%  520.00us
     90%  700.00us
     99%    1.50ms
  698765 requests in 10.00s, 120.00MB read
Requests/sec:  69876.50
Transfer/sec:     12.00MB
";
        let load = parse_wrk(report).unwrap();
        assert_eq!(load.per_second, 69876.5);
        assert_eq!(load.p50, Duration::from_micros(400));
        assert_eq!(load.p99, Duration::from_micros(1500));
        assert_eq!(load.requests, 698765);
        let failed = format!("{report}  Non-2xx or 3xx responses: 12\n");
        assert!(parse_wrk(&failed).is_err());
        assert!(parse_wrk("nothing").is_err());
    }

    #[test]
    fn latencies_carry_their_unit() {
        let cases = [
            ("612.00us", Some(Duration::from_micros(612))),
            ("1.25ms", Some(Duration::from_micros(1250))),
            ("2.00s", Some(Duration::from_secs(2))),
            ("12", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_latency(text), expected, "{text}");
        }
    }
}
