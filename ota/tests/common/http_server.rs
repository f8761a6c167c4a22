//! A small static HTTP/1.1 server on 127.0.0.1 with Range support, for the client tests. It
//! counts body bytes served and can drop a connection mid-body (to exercise resume) or cut every
//! Range response once a byte budget is spent (to interrupt an install).
#![allow(dead_code, clippy::unwrap_used)]
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Default)]
pub struct Knobs {
    pub served_bytes: u64,
    pub requests: u64,
    /// Drop the next GET's connection after this many body bytes.
    pub drop_once_after: Option<u64>,
    /// Stall the next Range GET (keep the connection open, send nothing) after this many bytes.
    pub stall_once_after: Option<u64>,
    /// Only Range GETs of at least this many bytes stall (0: any).
    pub stall_min_len: u64,
    /// Total body bytes still to serve to Range requests; after that, connections are cut.
    pub budget: Option<u64>,
}

pub struct Server {
    pub base: String,
    pub knobs: Arc<Mutex<Knobs>>,
}

pub async fn start(root: PathBuf) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let knobs = Arc::new(Mutex::new(Knobs::default()));
    let k = knobs.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (root, k) = (root.clone(), k.clone());
            tokio::spawn(async move {
                let _ = serve(stream, root, k).await;
            });
        }
    });
    Server { base, knobs }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    root: PathBuf,
    knobs: Arc<Mutex<Knobs>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or("/"));
    let range = lines
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("range: bytes=")
                .map(str::to_string)
        })
        .and_then(|r| {
            let (a, b) = r.split_once('-')?;
            Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?))
        });
    let file = root.join(path.trim_start_matches('/'));
    let Ok(data) = std::fs::read(&file) else {
        return stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
    };
    let stall = {
        let mut k = knobs.lock().unwrap();
        let long_enough = range.is_some_and(|(a, b)| b.saturating_sub(a) + 1 >= k.stall_min_len);
        if range.is_some() && method == "GET" && long_enough {
            k.stall_once_after.take()
        } else {
            None
        }
    };
    let drop_after = {
        let mut k = knobs.lock().unwrap();
        k.requests += 1;
        match (
            range.is_some() && method == "GET",
            k.drop_once_after.take(),
            k.budget,
        ) {
            (false, once, _) => {
                k.drop_once_after = once;
                None
            }
            (true, Some(n), _) => Some(n),
            (true, None, budget) => budget,
        }
    };
    let len = data.len() as u64;
    let (status, body, extra) = match range {
        Some((a, b)) if a < len && b >= a => {
            let b = b.min(len - 1);
            (
                "206 Partial Content",
                &data[a as usize..=b as usize],
                format!("content-range: bytes {a}-{b}/{len}\r\n"),
            )
        }
        Some(_) => (
            "416 Range Not Satisfiable",
            &data[0..0],
            format!("content-range: bytes */{len}\r\n"),
        ),
        None => ("200 OK", &data[..], String::new()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if method == "HEAD" {
        return Ok(());
    }
    if let Some(n) = stall {
        // Headers are out; send a few body bytes, then nothing while holding the connection.
        stream.write_all(&body[..n as usize]).await?;
        knobs.lock().unwrap().served_bytes += n;
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return Ok(());
    }
    let send = match drop_after {
        Some(n) => &body[..(n as usize).min(body.len())],
        None => body,
    };
    stream.write_all(send).await?;
    let mut k = knobs.lock().unwrap();
    k.served_bytes += send.len() as u64;
    if let Some(b) = k.budget.as_mut() {
        *b = b.saturating_sub(send.len() as u64);
    }
    Ok(()) // dropping the stream early cuts the body short of its content-length
}
