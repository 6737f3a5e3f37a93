//! The floor under `bench/engine_load.py`'s process under test: the same
//! calls' sockets with no media work at all. Each call gets an RTP and an
//! RTCP socket, as an engine call does (a port pair of its own, in one
//! epoll set, kernel arrival timestamps on), and every datagram it receives
//! goes straight back to its sender through `recvmmsg` and `sendto`, the
//! system calls the engine's workers make. What this process takes of the
//! machine is what the kernel takes to move those calls' packets, which no
//! engine, however fast, can spend less than. `bench/sockets_floor.py`
//! runs it against the load generator.
//!
//! Protocol: `load_sockets_floor <calls> <first port>` binds the port pairs
//! from there up (skipping ports in use), prints `ports <RTP port>...` on
//! one line, echoes until a line (or end of file) arrives on stdin, then
//! exits.

use std::io::{self, BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use rtpcore_engine::sys::{bind_udp, Epoll, RecvBatch, SendBatch};

// As many datagrams per read as an engine worker takes from one socket.
const RECV_BATCH: usize = 32;
const EPOLL_EVENTS: usize = 256;

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

// `calls` port pairs (RTP on the even port, RTCP above), from `first` up.
fn bind_pairs(calls: usize, first: u16) -> io::Result<Vec<(UdpSocket, UdpSocket)>> {
    let mut pairs = Vec::with_capacity(calls);
    let mut port = first & !1;
    while pairs.len() < calls {
        let next = port.checked_add(2).ok_or_else(|| {
            io::Error::new(io::ErrorKind::AddrInUse, format!("only {} free port pairs from {first}", pairs.len()))
        })?;
        if let (Ok(rtp), Ok(rtcp)) = (bind_udp(localhost(port)), bind_udp(localhost(port + 1))) {
            pairs.push((rtp, rtcp));
        }
        port = next;
    }
    Ok(pairs)
}

fn run() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = || io::Error::new(io::ErrorKind::InvalidInput, "usage: load_sockets_floor <calls> <first port>");
    let calls: usize = args.next().and_then(|a| a.parse().ok()).ok_or_else(usage)?;
    let first: u16 = args.next().and_then(|a| a.parse().ok()).ok_or_else(usage)?;

    let sockets: Vec<UdpSocket> = bind_pairs(calls, first)?.into_iter().flat_map(|(rtp, rtcp)| [rtp, rtcp]).collect();
    let mut epoll = Epoll::new(EPOLL_EVENTS)?;
    for (token, socket) in sockets.iter().enumerate() {
        epoll.add(socket.as_raw_fd(), token as u64)?;
    }
    let ports: Vec<String> = sockets.iter().step_by(2).map(|s| s.local_addr().map(|a| a.port().to_string())).collect::<io::Result<_>>()?;
    println!("ports {}", ports.join(" "));
    io::stdout().flush()?;
    std::thread::spawn(|| {
        let _ = io::stdin().lock().lines().next();
        std::process::exit(0);
    });

    let mut received = RecvBatch::new(RECV_BATCH);
    let mut replies = SendBatch::new();
    let mut ready = Vec::with_capacity(EPOLL_EVENTS);
    loop {
        ready.clear();
        ready.extend(epoll.wait()?);
        for &token in &ready {
            let socket = &sockets[token as usize];
            let count = received.recv(socket)?;
            for datagram in (0..count).filter_map(|i| received.get(i)) {
                replies.push(socket, datagram.from, datagram.data);
            }
            replies.flush();
        }
    }
}

fn main() {
    if let Err(error) = run() {
        eprintln!("load_sockets_floor: {error}");
        std::process::exit(2);
    }
}
