//! DNS rebinding: an HTTP health check given vetted addresses connects to those and never resolves the host
//! name itself. The URLs use a name that does not resolve at all (`.invalid`), so a connection can only have
//! come from the pin; the unpinned check of the same URL shows the name indeed goes nowhere.

use langsight_monitor::{check, check_pinned, Pinned, ServerSpec, Status, Transport};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const HOST: &str = "vetted-mcp.invalid";

/// A listener that records each request's head and answers 404: it stands for the address the policy vetted.
async fn recorder() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                // Recorded before answering: once the client has its answer, the head is in the channel.
                let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                let _ =
                    sock.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    (addr, rx)
}

fn spec(transport: Transport) -> ServerSpec {
    ServerSpec {
        name: "pinned".into(),
        transport,
        timeout: Duration::from_secs(10),
        health_tool: None,
        health_tool_args: Default::default(),
    }
}

fn host_header(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("host")).map(|(_, v)| v.trim().to_string())
    })
}

#[tokio::test]
async fn http_checks_connect_only_to_the_pinned_addresses() {
    for (path, make) in [
        ("/mcp", (|url: String| Transport::StreamableHttp { url, headers: vec![] }) as fn(String) -> Transport),
        ("/sse", |url: String| Transport::Sse { url, headers: vec![] }),
    ] {
        let (addr, mut seen) = recorder().await;
        let url = format!("http://{HOST}:{}{path}", addr.port());
        // The pin carries another port on purpose: the URL's port is the one used.
        let pin = Pinned { host: HOST.into(), addrs: vec![SocketAddr::new(addr.ip(), 1)] };
        let r = check_pinned(&spec(make(url.clone())), Some(&pin)).await;
        assert_eq!(r.status, Status::Down, "{url}: the recorder is no MCP server");
        let head =
            seen.try_recv().unwrap_or_else(|_| panic!("{url}: no request reached the pinned address: {:?}", r.error));
        assert!(head.contains(path), "{url}: {head}");
        assert_eq!(host_header(&head).as_deref(), Some(format!("{HOST}:{}", addr.port()).as_str()), "{head}");

        // Unpinned, the same URL reaches nothing: the name does not resolve.
        let r = check(&spec(make(url.clone()))).await;
        assert_eq!(r.status, Status::Down);
        assert!(seen.try_recv().is_err(), "{url}: an unpinned check must not reach the recorder");
    }
}

#[tokio::test]
async fn a_pin_for_another_host_is_refused_before_connecting() {
    let (addr, mut seen) = recorder().await;
    let url = format!("http://{HOST}.:{}/mcp", addr.port()); // the trailing dot is another name to a resolver
    let pin = Pinned { host: HOST.into(), addrs: vec![addr] };
    let r = check_pinned(&spec(Transport::StreamableHttp { url, headers: vec![] }), Some(&pin)).await;
    assert_eq!(r.status, Status::Down);
    let error = r.error.unwrap_or_default();
    assert!(error.contains("not connecting"), "{error}");
    assert!(seen.try_recv().is_err());
}
