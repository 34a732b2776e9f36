//! Quickstart: talk to a local Meridian cluster with the Rust SDK.
//!
//! Start the local lab first (three regions of three nodes on loopback,
//! certificates in `.meridian/certs`):
//!
//! ```text
//! meridian cluster up
//! cargo run --release --example quickstart            # region us-east
//! cargo run --release --example quickstart -- eu-west # or another region
//! cargo run --release --example quickstart -- us-east lab  # the cluster of `--state-dir lab`
//! ```
//!
//! Run from the repository root. It reads the topology `cluster up` runs
//! (`<state dir>/topology.toml`, else `regions/local.toml`) and the
//! certificates in `<state dir>/certs`; the state dir is `.meridian`
//! unless given.

use std::path::PathBuf;
use std::time::Duration;

use meridian::client::{Client, ClientError, ClientOptions, FieldOp, ReadConsistency};
use meridian::topology::Topology;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let region = std::env::args().nth(1).unwrap_or_else(|| "us-east".into());
    let state_dir = PathBuf::from(
        std::env::args()
            .nth(2)
            .unwrap_or_else(|| ".meridian".into()),
    );
    let running = state_dir.join("topology.toml");
    let topology = if running.exists() {
        Topology::load(&running)?
    } else {
        Topology::load("regions/local.toml")?
    };
    let client = Client::connect(ClientOptions::new(
        topology,
        &region,
        state_dir.join("certs"),
    ))
    .await?;
    client.ping().await?;
    println!("connected to region {region}");

    // A register: last writer wins.
    let greeting = client.register("quickstart:greeting");
    greeting.set("hello from the quickstart").await?;
    let value = greeting.get().await?.unwrap_or_default();
    println!("register: {}", String::from_utf8_lossy(&value));

    // A register that expires.
    client
        .register("quickstart:session")
        .set_with_ttl("token", Duration::from_secs(30))
        .await?;
    println!("ttl:      {:?}", client.ttl("quickstart:session").await?);

    // A counter: increments from every region add up.
    let visits = client.counter("quickstart:visits");
    println!("counter:  {}", visits.incr(1).await?);

    // A set: an add wins over a concurrent remove.
    let langs = client.set("quickstart:languages");
    langs.add_all(["rust", "erlang", "go"]).await?;
    langs.remove("go").await?;
    let members: Vec<String> = langs
        .members()
        .await?
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    println!("set:      {members:?}");
    // A large set is read a page at a time (here one member per page).
    let mut pages = langs.scan(1);
    while let Some(page) = pages.next_page().await? {
        println!("  page:   {:?}", String::from_utf8_lossy(&page[0]));
    }

    // A map with a nested field.
    let profile = client.map("quickstart:profile");
    profile.put("name", "Ada").await?;
    profile.incr("logins", 1).await?;
    profile
        .apply(["prefs", "theme"], FieldOp::Set("dark".into()))
        .await?;
    println!("map:      {} fields", profile.len().await?);

    // A multi-value register keeps concurrent writes side by side.
    let doc = client.mvregister("quickstart:doc");
    doc.set("draft 1").await?;
    println!("mvreg:    {} value(s)", doc.get().await?.len());

    // Read from a majority of the key's replicas (and repair stale ones).
    let quorum = client.with_read(ReadConsistency::Quorum);
    let again = quorum.register("quickstart:greeting").get().await?;
    println!(
        "quorum:   {:?}",
        again.map(|v| String::from_utf8_lossy(&v).into_owned())
    );

    // Errors are typed: a counter is not a set.
    match client.set("quickstart:visits").add("x").await {
        Err(ClientError::WrongType { wanted, found }) => {
            println!("typed:    WRONGTYPE (wanted {wanted}, found {found})")
        }
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
