use std::process::ExitCode;

use clap::Parser;
use devsecops_app::cli::{self, Cli, Command};
use devsecops_app::configuration::Settings;
use devsecops_app::startup::{Application, ShutdownSignals, StartupErrorKind};
use devsecops_app::telemetry;
use slog::{crit, info};

fn main() -> ExitCode {
    // The service keeps running for weeks: score a production token in a child process, whose
    // memory goes when it exits (cli::token_strength_in_child).
    devsecops_app::configuration::set_strength_estimator(cli::token_strength_in_child);
    // An unknown command or flag exits 2 here, before anything is read or bound; --help and
    // --version exit 0.
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        // For images without a shell (helm test, compose health checks).
        Command::Healthcheck { url } => match devsecops_app::healthcheck::check(Some(&url)) {
            Ok(status) => {
                println!("{status}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("devsecops-app healthcheck: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Migrate => cli::migrate(),
        Command::Backup(args) => cli::backup(args),
        Command::Restore(args) => cli::restore(args),
        Command::TokenStrength => cli::token_strength(),
    }
}

fn serve() -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            // The level comes from the settings that failed, so this one line is written at the
            // default level: on stderr for a person, and as JSON on stdout for the log pipeline.
            let logger = telemetry::logger(stdout_sink(), slog::Level::Info);
            return configuration_error(&logger, &err.to_string());
        }
    };
    let logger = telemetry::logger_with(stdout_sink(), settings.log_level, settings.log_write);
    info!(logger, "starting";
        "environment" => settings.environment.as_str(),
        "workers" => settings.workers,
        "log_write" => settings.log_write.as_str());

    let runtime = actix_web::rt::System::new();
    let result = runtime.block_on(async {
        // Listening for SIGTERM before the build: a signal during start-up (migrations, binding)
        // ends the process cleanly, with a log line, instead of by the default action.
        let mut signals = ShutdownSignals::install();
        let app = tokio::select! {
            built = Application::build(settings, logger.clone()) => built?,
            () = signals.recv() => {
                info!(logger, "a signal arrived during start-up: exiting before serving";
                    "event" => "shutdown");
                return Ok(());
            }
        };
        app.run_with(signals).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind == StartupErrorKind::Configuration => {
            configuration_error(&logger, &err.message)
        }
        Err(err) => {
            eprintln!("devsecops-app: {err}");
            crit!(logger, "exiting"; "error" => err.to_string());
            ExitCode::FAILURE
        }
    }
}

/// Exit 2 with the message on stderr and in the log: a configuration error names what to fix.
fn configuration_error(logger: &slog::Logger, message: &str) -> ExitCode {
    eprintln!("devsecops-app: configuration error: {message}");
    crit!(logger, "configuration error"; "event" => "configuration_error", "error" => message);
    ExitCode::from(2)
}

/// Standard output without the standard library's buffer in front of it: a write that fails is
/// then seen by the logger, which counts the lines it loses, not by a later flush that cannot say
/// which lines it held.
fn stdout_sink() -> telemetry::LogSink {
    use std::os::fd::AsFd;
    match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => Box::new(std::io::stdout()),
    }
}
