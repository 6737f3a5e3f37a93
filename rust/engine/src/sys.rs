//! The engine's only `unsafe` code: thin wrappers over the Linux system calls
//! the driver needs and `std` does not offer — batched datagram I/O
//! (`recvmmsg`/`sendmmsg`) with kernel arrival timestamps, `epoll`,
//! `eventfd`, `timerfd` and the raw clocks.
//!
//! Each wrapper owns its file descriptor (`OwnedFd`), so closing is
//! `Drop` and a descriptor can never leak or be closed twice. Every other
//! module in the crate is safe code.

use std::io;
use std::mem::{size_of, zeroed, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Nanoseconds on `CLOCK_MONOTONIC`: the engine's one time base, given to
/// the sans-IO legs as `now_ns`.
pub fn monotonic_ns() -> i64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Nanoseconds on `CLOCK_REALTIME`, the clock of `SO_TIMESTAMPNS`; only used
/// to translate kernel arrival stamps onto the monotonic base.
pub fn realtime_ns() -> i64 {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; both clocks always exist on
    // Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    timespec_ns(&ts)
}

// time_t and c_long are 32 bits on some targets; from() widens them there.
#[allow(clippy::useless_conversion)]
fn timespec_ns(ts: &libc::timespec) -> i64 {
    i64::from(ts.tv_sec).saturating_mul(1_000_000_000).saturating_add(i64::from(ts.tv_nsec))
}

fn ns_timespec(ns: i64) -> libc::timespec {
    libc::timespec { tv_sec: ns.div_euclid(1_000_000_000) as libc::time_t, tv_nsec: ns.rem_euclid(1_000_000_000) as _ }
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `check` guarantees a fresh descriptor that nothing else owns.
    check(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds a non-blocking UDP socket with kernel receive timestamps
/// (`SO_TIMESTAMPNS`) switched on, so that a datagram's arrival time is the
/// moment the kernel queued it, not the moment a batched drain read it.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    // std opens sockets with SOCK_CLOEXEC, so child processes never inherit them.
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a pointer to a c_int of the given size.
    check(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(socket)
}

/// Sets a socket's receive and send buffers to `bytes` each: as root past
/// the system's `rmem_max`/`wmem_max` (`SO_RCVBUFFORCE`), otherwise as far
/// as they allow. A socket that one worker shares among all its calls
/// queues all their datagrams between two reads.
pub fn set_buffer_sizes(socket: &UdpSocket, bytes: usize) {
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for (forced, plain) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
        for option in [forced, plain] {
            // SAFETY: a valid socket and a pointer to a c_int of the given size.
            let ret = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&size as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            // Without CAP_NET_ADMIN the forced option fails; the plain one
            // is capped by the system and cannot fail for a valid socket.
            if ret == 0 {
                break;
            }
        }
    }
}

/// Largest datagram the engine reads whole. Audio RTP is a few hundred
/// bytes; anything longer is not ours and is dropped as truncated.
pub const MAX_DATAGRAM: usize = 2048;

// Room for one SCM_TIMESTAMPNS control message (a timespec), generously
// rounded so a kernel adding another message type cannot overflow it.
const CONTROL_LEN: usize = 64;

/// One datagram of a [`RecvBatch`].
#[derive(Debug)]
pub struct Datagram<'a> {
    /// Source address.
    pub from: SocketAddr,
    /// The payload.
    pub data: &'a [u8],
    /// Kernel arrival time on `CLOCK_REALTIME`, if the stamp came with it.
    pub arrival_realtime_ns: Option<i64>,
}

/// Reusable buffers for `recvmmsg`: read up to `capacity` datagrams from one
/// socket in one system call.
pub struct RecvBatch {
    buffers: Vec<[u8; MAX_DATAGRAM]>,
    names: Vec<libc::sockaddr_storage>,
    controls: Vec<[u64; CONTROL_LEN / 8]>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    received: usize,
}

// SAFETY: the raw pointers in `iovecs`/`headers` only ever point into the
// heap storage of this struct's own vectors, which is never reallocated.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Buffers for `capacity` datagrams per call (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for
        // which all-zero bytes are a valid value.
        let zero_name: libc::sockaddr_storage = unsafe { zeroed() };
        let mut batch = RecvBatch {
            buffers: vec![[0; MAX_DATAGRAM]; capacity],
            names: vec![zero_name; capacity],
            controls: vec![[0; CONTROL_LEN / 8]; capacity],
            iovecs: (0..capacity).map(|_| unsafe { zeroed() }).collect(),
            headers: (0..capacity).map(|_| unsafe { zeroed() }).collect(),
            received: 0,
        };
        // The pointers go into the vectors' heap storage, which never
        // moves (they are never resized), so they are set once here, and
        // moving the batch itself is harmless.
        for i in 0..capacity {
            batch.iovecs[i] = libc::iovec { iov_base: batch.buffers[i].as_mut_ptr().cast(), iov_len: MAX_DATAGRAM };
            let header = &mut batch.headers[i].msg_hdr;
            header.msg_name = (&mut batch.names[i] as *mut libc::sockaddr_storage).cast();
            header.msg_iov = &mut batch.iovecs[i];
            header.msg_iovlen = 1;
            header.msg_control = batch.controls[i].as_mut_ptr().cast();
            batch.reset_lengths(i);
        }
        batch
    }

    // Restores the fields the kernel overwrites when it fills header `i`.
    fn reset_lengths(&mut self, i: usize) {
        let header = &mut self.headers[i].msg_hdr;
        header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        header.msg_controllen = CONTROL_LEN as _;
        header.msg_flags = 0;
        self.headers[i].msg_len = 0;
    }

    /// Reads whatever is queued on `socket`, up to the batch capacity,
    /// without blocking. Returns how many datagrams were read (0 when none
    /// was waiting).
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        // Only the headers the last read filled were changed by the kernel
        // (a call usually finds one datagram per ptime, not 32).
        for i in 0..self.received {
            self.reset_lengths(i);
        }
        self.received = 0;
        // SAFETY: every header points at buffers owned by `self` that stay
        // alive and unaliased for the duration of the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                self.headers.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        self.received = n as usize;
        Ok(self.received)
    }

    /// The `i`-th datagram of the last [`recv`](Self::recv), or `None` when
    /// `i` is out of range, the datagram was longer than [`MAX_DATAGRAM`]
    /// (truncated) or came from an address family other than IPv4/IPv6.
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.received {
            return None;
        }
        let header = &self.headers[i];
        if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let from = sockaddr_to_std(&self.names[i])?;
        let len = (header.msg_len as usize).min(MAX_DATAGRAM);
        Some(Datagram { from, data: &self.buffers[i][..len], arrival_realtime_ns: self.arrival(i) })
    }

    fn arrival(&self, i: usize) -> Option<i64> {
        let header = &self.headers[i].msg_hdr;
        // SAFETY: the kernel filled `msg_control` up to `msg_controllen`;
        // the CMSG macros only walk within that length, and the timestamp
        // payload is read unaligned because cmsg data has no alignment promise.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(header);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::timespec);
                    return Some(timespec_ns(&ts));
                }
                cmsg = libc::CMSG_NXTHDR(header, cmsg);
            }
        }
        None
    }
}

/// Datagrams waiting to go out through `sendmmsg`, each with its socket.
/// Consecutive datagrams on the same socket share one system call.
pub struct SendBatch {
    data: Vec<u8>,
    entries: Vec<(RawFd, libc::sockaddr_storage, libc::socklen_t, usize, usize)>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: as for RecvBatch, the raw pointers are rebuilt before every use
// and only point into this struct.
unsafe impl Send for SendBatch {}

/// What a [`SendBatch::flush`] achieved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Datagrams dropped because a socket buffer was full or the send failed.
    pub failed: u64,
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl SendBatch {
    /// An empty batch.
    pub fn new() -> Self {
        SendBatch { data: Vec::with_capacity(4096), entries: Vec::new(), iovecs: Vec::new(), headers: Vec::new() }
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queues `data` for `to` through `socket`; the bytes are copied, so the
    /// caller's buffer may be reused at once.
    pub fn push(&mut self, socket: &UdpSocket, to: SocketAddr, data: &[u8]) {
        let (name, len) = std_to_sockaddr(to);
        let start = self.data.len();
        self.data.extend_from_slice(data);
        self.entries.push((socket.as_raw_fd(), name, len, start, data.len()));
    }

    /// Sends everything queued and empties the batch. A full socket buffer
    /// drops the datagram (real-time audio that waits is worse than audio
    /// lost); failures are counted, never fatal.
    ///
    /// A run of datagrams on one socket goes out through one `sendmmsg`; a
    /// lone datagram (each call sends one per ptime on its own socket)
    /// through `sendto`, which spares the kernel copying and checking a
    /// message header and an iovec array for it.
    pub fn flush(&mut self) -> SendOutcome {
        let mut outcome = SendOutcome::default();
        let mut first = 0;
        while first < self.entries.len() {
            let fd = self.entries[first].0;
            let mut end = first + 1;
            while end < self.entries.len() && self.entries[end].0 == fd {
                end += 1;
            }
            if end - first == 1 {
                self.send_one(first, &mut outcome);
            } else {
                self.send_run(first, end, &mut outcome);
            }
            first = end;
        }
        self.entries.clear();
        self.data.clear();
        outcome
    }

    fn send_one(&self, i: usize, outcome: &mut SendOutcome) {
        let (fd, ref name, name_len, start, len) = self.entries[i];
        loop {
            // SAFETY: the data range and the address lie in buffers owned
            // by `self`, alive for the duration of the call.
            let n = unsafe {
                libc::sendto(
                    fd,
                    self.data[start..start + len].as_ptr().cast(),
                    len,
                    libc::MSG_DONTWAIT,
                    (name as *const libc::sockaddr_storage).cast(),
                    name_len,
                )
            };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Failure: buffer full, unreachable peer reported by ICMP...
            if n < 0 {
                outcome.failed += 1;
            } else {
                outcome.sent += 1;
            }
            return;
        }
    }

    // Sends entries[first..end], all on one socket, through sendmmsg.
    fn send_run(&mut self, mut first: usize, end: usize, outcome: &mut SendOutcome) {
        let fd = self.entries[first].0;
        self.iovecs.clear();
        for &(_, _, _, start, len) in &self.entries[first..end] {
            self.iovecs.push(libc::iovec { iov_base: self.data[start..].as_mut_ptr().cast(), iov_len: len });
        }
        self.headers.clear();
        for (i, entry) in self.entries[first..end].iter_mut().enumerate() {
            // SAFETY: an all-zero mmsghdr is valid; the pointers set below
            // stay valid until the end of this function.
            let mut header: libc::mmsghdr = unsafe { zeroed() };
            header.msg_hdr.msg_name = (&mut entry.1 as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = entry.2;
            header.msg_hdr.msg_iov = &mut self.iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
            self.headers.push(header);
        }
        let base = first;
        while first < end {
            // SAFETY: headers[first - base..] point at live buffers in self.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.headers[first - base..].as_mut_ptr(),
                    (end - first) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram failed (buffer full, unreachable
                // peer reported by ICMP...): drop it and carry on.
                outcome.failed += 1;
                first += 1;
            } else {
                outcome.sent += n as u64;
                first += n as usize;
            }
        }
    }
}

fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn std_to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr = libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_addr = libc::in6_addr { s6_addr: v6.ip().octets() };
            sin6.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// An `epoll` instance whose events carry a caller-chosen `u64` token.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new epoll set returning up to `capacity` events per wait.
    pub fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: plain system call.
        let fd = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll { fd, events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)] })
    }

    /// Watches `fd` for readability (level-triggered: a socket not fully
    /// drained is reported again, so no datagram is ever stranded).
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: valid epoll fd and event pointer.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) }).map(drop)
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: valid epoll fd; the event argument is ignored but must be
        // non-null on old kernels.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut event) }).map(drop)
    }

    /// Waits until something is ready (forever: the engine's deadlines are
    /// a timerfd in the set) and returns the ready tokens.
    pub fn wait(&mut self) -> io::Result<impl Iterator<Item = u64> + '_> {
        // SAFETY: the buffer holds `events.len()` writable epoll_events.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), self.events.len() as libc::c_int, -1) };
        let n = match check(n) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        Ok(self.events[..n].iter().map(|e| e.u64))
    }
}

/// An `eventfd`: a counter one thread bumps to wake another that watches it
/// (in an epoll set, or in Python's event loop through `add_reader`).
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new non-blocking eventfd at zero.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call.
        Ok(EventFd { fd: owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })? })
    }

    /// Makes the descriptor readable.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64. The only possible failure
        // is EAGAIN at a counter of 2^64-2, which still leaves it readable.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the counter; returns how many signals were pending.
    pub fn drain(&self) -> u64 {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; EAGAIN (nothing pending)
        // leaves it at zero.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
        value
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A `timerfd` on `CLOCK_MONOTONIC` armed at absolute deadlines: the
/// worker's wheel sets it to its next deadline with nanosecond precision
/// (`epoll_wait`'s own timeout only has milliseconds).
pub struct TimerFd {
    fd: OwnedFd,
    armed_ns: Option<i64>,
}

impl TimerFd {
    /// A new, disarmed timer.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call.
        let fd = owned(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) })?;
        Ok(TimerFd { fd, armed_ns: None })
    }

    /// Arms the timer at `deadline_ns` (monotonic), or disarms it with `None`.
    /// A system call only happens when the deadline changes.
    pub fn set(&mut self, deadline_ns: Option<i64>) {
        if deadline_ns == self.armed_ns {
            return;
        }
        // A zero it_value would disarm; a deadline at or before the epoch
        // means "now", which 1 ns expresses.
        let value = deadline_ns.map_or(ns_timespec(0), |d| ns_timespec(d.max(1)));
        let spec = libc::itimerspec { it_interval: ns_timespec(0), it_value: value };
        let mut old = MaybeUninit::<libc::itimerspec>::uninit();
        // SAFETY: valid timerfd and itimerspec pointers. Failure is impossible
        // with a valid absolute time, and a disarmed timer would only delay
        // work until the next socket or command event.
        unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), libc::TFD_TIMER_ABSTIME, &spec, old.as_mut_ptr()) };
        self.armed_ns = deadline_ns;
    }

    /// Acknowledges an expiry, so the level-triggered epoll stops reporting
    /// it. The deadline is forgotten; the caller arms the next one.
    pub fn acknowledge(&mut self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; EAGAIN is harmless.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        self.armed_ns = None;
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_send_and_receive_with_timestamps() {
        let a = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let b_addr = b.local_addr().unwrap();
        let mut out = SendBatch::new();
        for i in 0..5u8 {
            out.push(&a, b_addr, &[i; 10]);
        }
        let before = realtime_ns();
        assert_eq!(out.flush(), SendOutcome { sent: 5, failed: 0 });
        assert!(out.is_empty());
        let mut batch = RecvBatch::new(8);
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = batch.recv(&b).unwrap();
            for i in 0..n {
                let d = batch.get(i).unwrap();
                assert_eq!(d.from, a.local_addr().unwrap());
                let stamp = d.arrival_realtime_ns.expect("SO_TIMESTAMPNS stamp");
                assert!(stamp >= before - 1_000_000 && stamp <= realtime_ns());
                got.push(d.data.to_vec());
            }
            if got.len() == 5 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(got, (0..5u8).map(|i| vec![i; 10]).collect::<Vec<_>>());
        assert_eq!(batch.recv(&b).unwrap(), 0, "nothing left, and no blocking");
    }

    #[test]
    fn lone_datagrams_and_runs_per_socket_all_go_out_in_order() {
        // A lone datagram per socket takes sendto, a run sendmmsg; the
        // batch mixes both in one flush.
        let (a, c) = (bind_udp("127.0.0.1:0".parse().unwrap()).unwrap(), bind_udp("127.0.0.1:0".parse().unwrap()).unwrap());
        let b = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = b.local_addr().unwrap();
        let mut out = SendBatch::new();
        out.push(&a, to, &[1]);
        out.push(&c, to, &[2, 2]);
        out.push(&c, to, &[3, 3, 3]);
        out.push(&a, to, &[4; 4]);
        assert_eq!(out.flush(), SendOutcome { sent: 4, failed: 0 });
        assert!(out.is_empty());
        let got = read_some(&mut RecvBatch::new(8), &b, 4);
        let (a, c) = (Some(a.local_addr().unwrap()), Some(c.local_addr().unwrap()));
        assert_eq!(got, vec![(a, vec![1]), (c, vec![2, 2]), (c, vec![3, 3, 3]), (a, vec![4; 4])]);
    }

    #[test]
    fn oversized_datagrams_are_reported_as_truncated() {
        let a = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        a.send_to(&[7u8; MAX_DATAGRAM + 1], b.local_addr().unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let mut batch = RecvBatch::new(4);
        assert_eq!(batch.recv(&b).unwrap(), 1);
        assert!(batch.get(0).is_none());
    }

    // Reads until `count` datagrams came, as (source, bytes); a truncated
    // one as (None, nothing).
    fn read_some(batch: &mut RecvBatch, socket: &UdpSocket, count: usize) -> Vec<(Option<SocketAddr>, Vec<u8>)> {
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = batch.recv(socket).unwrap();
            got.extend((0..n).map(|i| batch.get(i).map_or((None, Vec::new()), |d| (Some(d.from), d.data.to_vec()))));
            if got.len() >= count {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        got
    }

    #[test]
    fn a_reused_batch_resets_what_each_read_changed() {
        // One batch serves every socket of a worker: a truncated datagram,
        // an IPv4 source after another, long then short datagrams must not
        // leak into the next read.
        let (a, b) = (bind_udp("127.0.0.1:0".parse().unwrap()).unwrap(), bind_udp("127.0.0.1:0".parse().unwrap()).unwrap());
        let to = b.local_addr().unwrap();
        let mut batch = RecvBatch::new(4);
        a.send_to(&[1; MAX_DATAGRAM + 1], to).unwrap();
        for len in [300, 20, 5] {
            a.send_to(&vec![len as u8; len], to).unwrap();
        }
        let first = read_some(&mut batch, &b, 4);
        assert_eq!(first[0], (None, Vec::new()), "the oversized datagram reads as truncated");
        let lengths: Vec<usize> = first[1..].iter().map(|(_, data)| data.len()).collect();
        assert_eq!(lengths, [300, 20, 5]);
        let c = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        c.send_to(&[9; 7], to).unwrap();
        c.send_to(&[8; 2000], to).unwrap();
        let second = read_some(&mut batch, &b, 2);
        assert_eq!(second, vec![(Some(c.local_addr().unwrap()), vec![9; 7]), (Some(c.local_addr().unwrap()), vec![8; 2000])]);
        assert!(batch.get(2).is_none());
    }

    #[test]
    fn ipv6_addresses_round_trip() {
        let addr: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        let (storage, _) = std_to_sockaddr(addr);
        assert_eq!(sockaddr_to_std(&storage), Some(addr));
        let addr: SocketAddr = "10.1.2.3:5004".parse().unwrap();
        let (storage, _) = std_to_sockaddr(addr);
        assert_eq!(sockaddr_to_std(&storage), Some(addr));
    }

    #[test]
    fn eventfd_and_timerfd_wake_epoll() {
        let mut epoll = Epoll::new(4).unwrap();
        let event = EventFd::new().unwrap();
        let mut timer = TimerFd::new().unwrap();
        epoll.add(event.as_raw_fd(), 1).unwrap();
        epoll.add(timer.as_raw_fd(), 2).unwrap();
        event.signal();
        event.signal();
        assert_eq!(epoll.wait().unwrap().collect::<Vec<_>>(), vec![1]);
        assert_eq!(event.drain(), 2);
        let start = monotonic_ns();
        timer.set(Some(start + 2_000_000));
        assert_eq!(epoll.wait().unwrap().collect::<Vec<_>>(), vec![2]);
        assert!(monotonic_ns() >= start + 2_000_000);
        timer.acknowledge();
        epoll.delete(event.as_raw_fd()).unwrap();
    }
}
