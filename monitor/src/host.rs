//! The machine's name, which every notice carries when `alerting.server_name` is not
//! set.

/// This machine's name, for `alerting.server_name`'s default (Windows keeps it in
/// `COMPUTERNAME`).
#[cfg(not(unix))]
pub(super) fn hostname() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "unknown host".to_owned())
}

/// This machine's hostname, for `alerting.server_name`'s default.
#[cfg(unix)]
pub(super) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // when the name fits (and the last byte stays 0 otherwise).
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(0);
    match std::str::from_utf8(&buf[..len]) {
        Ok(name) if ok && !name.is_empty() => name.to_owned(),
        _ => "unknown host".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_has_a_name() {
        assert!(!super::hostname().is_empty());
    }
}
