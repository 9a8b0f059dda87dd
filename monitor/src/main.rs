use anyhow::Context as _;

fn main() -> std::process::ExitCode {
    let cli = monitor::cli::Cli::parse_args();
    if cli.print_config {
        return print_config(&cli);
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
