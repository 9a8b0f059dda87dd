//! A process that holds TCP sockets open, for the connection monitor's tests:
//!
//! ```text
//! hold_connections listen ADDR...          bind each ADDR (port 0: any), accept and keep
//!                                          every connection; prints `listening ADDR`
//! hold_connections connect N ADDR...       open N connections to each ADDR; prints
//!                                          `connected LOCAL REMOTE` for each
//! ```
//!
//! Then `ready`, and it holds everything until its standard input closes (or it is
//! killed). Its name is longer than the 15 characters the kernel keeps, on purpose: the
//! monitor must still name it in full.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    process::ExitCode,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    let mut held: Vec<TcpStream> = Vec::new();
    match args.first().map(String::as_str) {
        Some("listen") if args.len() > 1 => {
            for addr in &args[1..] {
                let listener = match TcpListener::bind(addr.as_str()) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("hold_connections: cannot listen on {addr}: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let _ = writeln!(out, "listening {}", listener.local_addr().unwrap());
                std::thread::spawn(move || {
                    let mut accepted = Vec::new();
                    for stream in listener.incoming().flatten() {
                        accepted.push(stream);
                    }
                });
            }
        }
        Some("connect") if args.len() > 2 => {
            let Ok(count) = args[1].parse::<usize>() else {
                eprintln!("hold_connections: `{}` is not a count", args[1]);
                return ExitCode::FAILURE;
            };
            for addr in &args[2..] {
                let Ok(addr) = addr.parse::<SocketAddr>() else {
                    eprintln!("hold_connections: `{addr}` is not an address");
                    return ExitCode::FAILURE;
                };
                for _ in 0..count {
                    match TcpStream::connect(addr) {
                        Ok(stream) => {
                            let _ = writeln!(
                                out,
                                "connected {} {}",
                                stream.local_addr().unwrap(),
                                stream.peer_addr().unwrap()
                            );
                            held.push(stream);
                        }
                        Err(e) => {
                            eprintln!("hold_connections: cannot connect to {addr}: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                }
            }
        }
        _ => {
            eprintln!("usage: hold_connections listen ADDR... | connect N ADDR...");
            return ExitCode::FAILURE;
        }
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);
    // Hold until the test closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(held);
    ExitCode::SUCCESS
}
