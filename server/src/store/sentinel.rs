//! (v3) Redis Sentinel: `--redis-url redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE`
//! names the Sentinels that watch a primary and its replicas, and the
//! service (the primary's name in their `sentinel monitor` line). The
//! store asks them which server is the primary when it opens and at
//! every heartbeat, and moves its connections to the new one after a
//! failover (see `RedisStore`'s heartbeat); every write waits until a
//! replica has it (`WAIT`), so that the replica a failover promotes holds
//! everything acknowledged.

use std::time::Duration;

/// How long one question to one Sentinel may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The scheme of a Sentinel URL.
pub const SCHEME: &str = "redis+sentinel://";

/// A parsed `redis+sentinel://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// `host:port` of each Sentinel.
    pub sentinels: Vec<String>,
    /// The monitored primary's name.
    pub service: String,
}

impl SentinelUrl {
    /// `None` for a URL of another scheme; an error for a Sentinel URL
    /// that does not read.
    pub fn parse(url: &str) -> Option<Result<SentinelUrl, String>> {
        let rest = url.strip_prefix(SCHEME)?;
        let (hosts, service) = match rest.split_once('/') {
            Some((h, s)) => (h, s.trim_end_matches('/')),
            None => (rest, ""),
        };
        if service.is_empty() || service.contains('/') {
            return Some(Err(format!(
                "a Sentinel URL names the service after the hosts: {SCHEME}HOST:PORT[,HOST:PORT]/SERVICE"
            )));
        }
        let mut sentinels = Vec::new();
        for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let with_port = if h
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                h.to_owned()
            } else {
                format!("{h}:26379")
            };
            sentinels.push(with_port);
        }
        if sentinels.is_empty() {
            return Some(Err("a Sentinel URL needs at least one Sentinel".into()));
        }
        Some(Ok(SentinelUrl {
            sentinels,
            service: service.to_owned(),
        }))
    }

    /// The primary's URL as the first Sentinel that answers names it.
    pub async fn primary(&self) -> Result<String, String> {
        let mut last = String::from("no Sentinel answered");
        for s in &self.sentinels {
            match tokio::time::timeout(ASK_TIMEOUT, self.ask(s)).await {
                Ok(Ok(Some(url))) => return Ok(url),
                Ok(Ok(None)) => last = format!("{s} knows no primary named {}", self.service),
                Ok(Err(e)) => last = format!("{s}: {e}"),
                Err(_) => last = format!("{s} did not answer"),
            }
        }
        Err(last)
    }

    async fn ask(&self, sentinel: &str) -> redis::RedisResult<Option<String>> {
        let client = redis::Client::open(format!("redis://{sentinel}/"))?;
        let mut con = client.get_multiplexed_async_connection().await?;
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.service)
            .query_async(&mut con)
            .await?;
        Ok(addr.map(|(host, port)| format!("redis://{host}:{port}/")))
    }

    /// [`primary`](Self::primary), blocking: for opening the store,
    /// before anything else runs.
    pub fn primary_blocking(&self) -> Result<String, String> {
        let mut last = String::from("no Sentinel answered");
        for s in &self.sentinels {
            let asked = (|| -> redis::RedisResult<Option<(String, u16)>> {
                let client = redis::Client::open(format!("redis://{s}/"))?;
                let mut con = client.get_connection_with_timeout(ASK_TIMEOUT)?;
                con.set_read_timeout(Some(ASK_TIMEOUT))?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.service)
                    .query(&mut con)
            })();
            match asked {
                Ok(Some((host, port))) => return Ok(format!("redis://{host}:{port}/")),
                Ok(None) => last = format!("{s} knows no primary named {}", self.service),
                Err(e) => last = format!("{s}: {e}"),
            }
        }
        Err(last)
    }
}

/// Real `redis-server` processes for a test of failover: a primary, a
/// replica and three Sentinels, each on a free port, all with an
/// append-only file synced at every write.
pub struct LocalSentinels {
    pub primary: super::redis::LocalRedis,
    pub replica: super::redis::LocalRedis,
    sentinels: Vec<(std::process::Child, u16)>,
}

/// The service name [`LocalSentinels`] monitor.
pub const TEST_SERVICE: &str = "chat";

impl LocalSentinels {
    /// Starts them in `dir` and waits until the Sentinels know the
    /// replica. `None` when `redis-server` is not installed outside CI
    /// (as [`super::redis::LocalRedis::for_test`]).
    pub fn for_test(dir: &std::path::Path) -> Option<LocalSentinels> {
        let primary_dir = dir.join("primary");
        let replica_dir = dir.join("replica");
        std::fs::create_dir_all(&primary_dir).ok()?;
        std::fs::create_dir_all(&replica_dir).ok()?;
        let primary = super::redis::LocalRedis::for_test(&primary_dir, true)?;
        let replica = super::redis::LocalRedis::start_replica(&replica_dir, primary.port())
            .expect("start the replica");
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let conf = dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {TEST_SERVICE} 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds {TEST_SERVICE} 500\n\
                     sentinel failover-timeout {TEST_SERVICE} 4000\n\
                     sentinel parallel-syncs {TEST_SERVICE} 1\n",
                    dir.display(),
                    primary.port()
                ),
            )
            .expect("write a Sentinel's configuration");
            let child = std::process::Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start a Sentinel");
            sentinels.push((child, port));
        }
        let set = LocalSentinels {
            primary,
            replica,
            sentinels,
        };
        set.wait_until_replica_known();
        Some(set)
    }

    /// The `redis+sentinel://` URL of the three.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(_, p)| format!("127.0.0.1:{p}"))
            .collect();
        format!("{SCHEME}{}/{TEST_SERVICE}", hosts.join(","))
    }

    /// Polls (with a deadline) until every Sentinel lists the replica:
    /// only then can they fail over to it.
    fn wait_until_replica_known(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let known = self.sentinels.iter().all(|(_, port)| {
                (|| -> redis::RedisResult<bool> {
                    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
                    let mut con = client.get_connection_with_timeout(ASK_TIMEOUT)?;
                    let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                        .arg("replicas")
                        .arg(TEST_SERVICE)
                        .query(&mut con)?;
                    Ok(!replicas.is_empty())
                })()
                .unwrap_or(false)
            });
            if known {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the Sentinels never saw the replica"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LocalSentinels {
    fn drop(&mut self) {
        for (c, _) in &mut self.sentinels {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_read() {
        assert_eq!(SentinelUrl::parse("redis://127.0.0.1:6379/"), None);
        assert_eq!(
            SentinelUrl::parse("redis+sentinel://a:26380,b,c:1/mymaster"),
            Some(Ok(SentinelUrl {
                sentinels: vec!["a:26380".into(), "b:26379".into(), "c:1".into()],
                service: "mymaster".into(),
            }))
        );
        assert!(matches!(
            SentinelUrl::parse("redis+sentinel://a:26379"),
            Some(Err(_))
        ));
        assert!(matches!(
            SentinelUrl::parse("redis+sentinel:///chat"),
            Some(Err(_))
        ));
    }
}
