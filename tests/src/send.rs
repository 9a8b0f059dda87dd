//! Exact traffic from inside a test namespace: each function sends precisely the
//! packets it is asked for, so the tests can assert the monitor's counts exactly.

use std::{
    fs::File,
    io::ErrorKind,
    net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use monitor_common::builder::checksum;

/// Runs `f` on a thread that has joined the namespace `ns`; sockets it opens live
/// there. Other threads of the test stay in the host namespace.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    spawn_in_netns(ns, f)
        .join()
        .map_err(|_| anyhow::anyhow!("sender thread panicked"))?
}

/// Starts a thread that has joined the namespace `ns` (sockets it opens live there) and
/// runs `f` on it; unlike [`in_netns`], it does not wait for the thread.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> JoinHandle<Result<T>> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let netns = File::open(&path).with_context(|| format!("failed to open {path}"))?;
        // SAFETY: a valid namespace fd; setns only changes this thread's namespace.
        if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns({path}) failed: {}", std::io::Error::last_os_error());
        }
        f()
    })
}

/// `count` UDP datagrams of `payload` zero bytes to `dst`.
pub fn udp(dst: SocketAddr, count: usize, payload: usize) -> Result<()> {
    let bind: SocketAddr = if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse()?;
    let socket = UdpSocket::bind(bind)?;
    let data = vec![0u8; payload];
    for _ in 0..count {
        socket.send_to(&data, dst).context("UDP send failed")?;
    }
    Ok(())
}

/// `count` TCP connection attempts to a closed port: one SYN each, answered by RST.
pub fn tcp_syns(dst: SocketAddr, count: usize) -> Result<()> {
    for _ in 0..count {
        match TcpStream::connect_timeout(&dst, Duration::from_secs(2)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Ok(_) => bail!("{dst} accepted a connection; the test needs a closed port"),
            Err(e) => bail!("connecting to {dst}: expected a refusal, got {e}"),
        }
    }
    Ok(())
}

/// `count` ICMP echo requests with `payload` bytes of data, through a raw socket.
pub fn icmp_echo(dst: Ipv4Addr, count: usize, payload: usize) -> Result<()> {
    // SAFETY: plain socket calls with checked results.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd < 0 {
        bail!("raw ICMP socket: {}", std::io::Error::last_os_error());
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    };
    let mut result = Ok(());
    for seq in 0..count {
        let mut echo = vec![8u8, 0, 0, 0, 0x12, 0x34];
        echo.extend_from_slice(&(seq as u16).to_be_bytes());
        echo.resize(8 + payload, 0xab);
        let sum = checksum(&echo);
        echo[2..4].copy_from_slice(&sum.to_be_bytes());
        // SAFETY: buffer and address are valid for the call.
        let sent = unsafe {
            libc::sendto(
                fd,
                echo.as_ptr().cast(),
                echo.len(),
                0,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            result = Err(anyhow::anyhow!(
                "ICMP send: {}",
                std::io::Error::last_os_error()
            ));
            break;
        }
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    result
}
