use anyhow::Context as _;

fn main() -> std::process::ExitCode {
    let cli = monitor::cli::Cli::parse_args();
    if cli.print_config {
        return print_config(&cli);
    }
    if let Some(monitor::cli::Command::Bans(command)) = &cli.command {
        return bans(&cli, command);
    }
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    logger.format_target(false);
    if cli.tui {
        // Into the dashboard's events panel while it owns the terminal.
        logger.target(env_logger::Target::Pipe(Box::new(
            monitor::tui::LogPipe::default(),
        )));
    }
    logger.init();
    // The per-source maps (several MB each under a flood) are made and freed every
    // poll. glibc raises its mmap threshold after the first such free, and from then
    // on serves them from heaps that keep freed memory: RSS climbs to hold several
    // copies. A fixed threshold keeps them mmapped, given back when freed.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: before any other thread is started; mallopt only tunes the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(monitor::run::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line: the context chain, outermost first.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--print-config`: the effective configuration as TOML, after checking the list files
/// it names, so that it also answers "would the monitor start with this?".
fn print_config(cli: &monitor::cli::Cli) -> std::process::ExitCode {
    let printed = cli
        .config()
        .context("invalid configuration")
        .and_then(|config| {
            monitor::detect::Lists::load(&config.lists).context("invalid address list")?;
            config
                .to_toml()
                .context("failed to print the configuration as TOML")
        });
    match printed {
        Ok(text) => {
            print!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `monitor bans list|unban ADDR`: asks the monitor running on the interface.
fn bans(cli: &monitor::cli::Cli, command: &monitor::cli::BansCommand) -> std::process::ExitCode {
    use monitor::{cli::BansCommand, control};
    let answered = cli
        .config()
        .context("invalid configuration")
        .and_then(|config| match config.capture.iface {
            Some(iface) => Ok(iface),
            None => monitor::iface::default_route(),
        })
        .and_then(|iface| {
            let request = match command {
                BansCommand::List => control::Request::List,
                BansCommand::Unban { address } => control::Request::Unban(*address),
            };
            control::send(&iface, &request)
        });
    let lines = match answered {
        Ok(lines) => lines,
        Err(err) => {
            eprintln!("error: {err:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for line in &lines {
        if cli.json {
            println!("{line}");
            continue;
        }
        let text = |key: &str| line.get(key).and_then(|v| v.as_str()).unwrap_or("?");
        match command {
            BansCommand::List => println!(
                "{}  {}  since {}  until {}{}",
                text("address"),
                text("reason"),
                text("since"),
                text("until"),
                if line.get("dry_run").and_then(serde_json::Value::as_bool) == Some(true) {
                    "  (dry run)"
                } else {
                    ""
                }
            ),
            BansCommand::Unban { .. } => println!("unbanned {}", text("unbanned")),
        }
    }
    if matches!(command, BansCommand::List) && lines.is_empty() && !cli.json {
        println!("no bans");
    }
    std::process::ExitCode::SUCCESS
}
