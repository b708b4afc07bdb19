//! `wccpd smoke`: forward packets between two vdevs and print counts.

/// Arguments of `wccpd smoke`.
#[derive(Debug, clap::Args)]
pub struct SmokeArgs {}

/// Entry point of `wccpd smoke`.
pub fn run_cli(args: &SmokeArgs) -> anyhow::Result<()> {
    anyhow::bail!("smoke not implemented yet ({args:?})")
}
