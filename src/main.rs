//! The `scrapefarm` binary: parses the command line, installs logging and the shutdown signal
//! handlers, and runs the command. Everything else lives in the library.

use clap::Parser;
use tokio_util::sync::CancellationToken;

use scrapefarm::app;
use scrapefarm::cli::{Cli, Command, DbCommand, DlqCommand, LogFormat};
use scrapefarm::operator;

fn main() -> std::process::ExitCode {
    // Before the runtime starts threads: the local offset can only be read soundly now.
    scrapefarm::report::init_local_offset();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::process::ExitCode {
    let mut cli = Cli::parse();
    cli.common.unset_empty();
    scrapefarm::telemetry::init(cli.common.log_format == LogFormat::Json);
    let shutdown = CancellationToken::new();
    // Tracked here: it lives as long as the command, and is aborted when the command returns.
    let signals = spawn_signal_handler(shutdown.clone());
    let common = &cli.common;
    let result = match &cli.command {
        Command::Migrate => app::migrate(common).await,
        Command::FixtureSite(args) => app::fixture_site(args, shutdown).await,
        Command::Enqueue(args) => app::enqueue(common, args).await,
        Command::Crawl(args) => scrapefarm::crawl::crawl(common, args, shutdown).await,
        Command::Demo(args) => app::demo(common, args, shutdown).await,
        Command::Worker(args) => app::worker(common, args, shutdown).await,
        Command::Listings(args) => operator::listings(common, args).await,
        Command::Export(args) => scrapefarm::export::export(common, args).await,
        Command::Searches(args) => operator::searches(common, args).await,
        Command::Serve(args) => app::serve(common, args, shutdown).await,
        Command::Scheduler(args) => app::scheduler(common, args, shutdown).await,
        Command::Status(args) => operator::status(common, args, shutdown).await,
        Command::Extract(args) => operator::extract(common, args).await,
        Command::Snapshots { cmd } => operator::snapshots(common, cmd).await,
        Command::Failures(args) => operator::failures(common, args).await,
        Command::Dlq(DlqCommand::Requeue(args)) => operator::dlq_requeue(common, args).await,
        Command::Health(args) => operator::health(common, args),
        Command::Apikey(cmd) => scrapefarm::api_key::command(common, cmd).await,
        Command::Db(DbCommand::GrantWorker(args)) => app::grant_worker(common, args).await,
        Command::Sites { cmd } => scrapefarm::site::command::run(common, cmd.as_ref()).await,
        Command::Alerts(cmd) => scrapefarm::alerts::command(common, cmd, shutdown).await,
        Command::Workers(args) => operator::workers(common, args).await,
    };
    signals.abort();
    exit_code(result)
}

/// 0 done; 1 error; 3 finished with failures (clap exits 2 on usage errors before this). A
/// closed stdout (`scrapefarm listings | head -1`) is a quiet success: the reader has had enough.
fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    let Err(e) = result else {
        return std::process::ExitCode::SUCCESS;
    };
    if scrapefarm::report::is_broken_pipe(&e) {
        return std::process::ExitCode::SUCCESS;
    }
    if e.downcast_ref::<app::FinishedWithFailures>().is_some() {
        eprintln!("{e}");
        return std::process::ExitCode::from(3);
    }
    eprintln!("error: {}", scrapefarm::report::error_chain(&e));
    std::process::ExitCode::FAILURE
}

/// SIGTERM or Ctrl-C cancels the shutdown token once; a second signal exits at once.
fn spawn_signal_handler(shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        for _ in 0..2 {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            if shutdown.is_cancelled() {
                std::process::exit(130);
            }
            tracing::info!("Shutdown requested; finishing in-flight pages.");
            shutdown.cancel();
        }
    })
}
