//! What a client without credentials, or a slow or silent one, can cost convoyd: memory, threads
//! and connections stay bounded, and the controller keeps answering.

use std::time::{Duration, Instant};

use convoy_e2e::Site;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A figure of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`) or a count (`Threads`).
fn status_figure(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("convoyd runs");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

const MIB: u64 = 1024;

/// Sends `POST path` with a `size`-byte body of zeros on a raw connection, then reads the
/// answer; returns its status line, or what went wrong.
async fn post_raw(url: &str, path: &str, size: usize) -> String {
    static ZEROS: [u8; 256 * 1024] = [0; 256 * 1024];
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    let mut left = size;
    while left > 0 {
        let n = left.min(ZEROS.len());
        if let Err(e) = stream.write_all(&ZEROS[..n]).await {
            return format!("sending failed after {} bytes: {e}", size - left);
        }
        left -= n;
    }
    let mut answer = Vec::new();
    match tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await {
        Ok(Ok(_)) => String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("(empty answer)")
            .to_string(),
        Ok(Err(e)) => format!("reading the answer failed: {e}"),
        Err(_) => "no answer within 30 s".to_string(),
    }
}

#[tokio::test]
async fn refused_bodies_are_not_read_into_memory() {
    const POSTS: usize = 50;
    const BODY: usize = 60_000_000;
    const LIMIT_KIB: u64 = 150 * MIB;
    let site = Site::controller_only(None).await;
    let pid = site.controller.pid().unwrap();
    let before = status_figure(pid, "VmHWM");
    // Every kind of route: user routes (one of them streams uploads), agent routes, the
    // public login and an unknown path.
    let paths = [
        "/v1/patches?file_name=big.patch",
        "/v1/hosts/worker-0/commands",
        "/v1/users",
        "/v1/agent/heartbeat",
        "/v1/agent/commands/x/outcome",
        "/v3/auth/tokens",
        "/v1/agent/enrol",
        "/v1/nowhere",
    ];
    let posts: Vec<_> = (0..POSTS)
        .map(|i| {
            let url = site.url();
            let path = paths[i % paths.len()];
            tokio::spawn(async move { (path, post_raw(&url, path, BODY).await) })
        })
        .collect();
    // Watch convoyd's memory while they run, and stop at the first sign of buffering.
    let all_done = async {
        let mut answers = vec![];
        for post in posts {
            answers.push(post.await.unwrap());
        }
        answers
    };
    let mut all_done = std::pin::pin!(all_done);
    let answers = loop {
        tokio::select! {
            answers = &mut all_done => break answers,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                let peak = status_figure(pid, "VmHWM");
                assert!(peak < LIMIT_KIB, "convoyd reached {} MiB", peak / MIB);
            }
        }
    };
    let peak = status_figure(pid, "VmHWM");
    eprintln!(
        "convoyd's peak memory under {POSTS} refused {BODY}-byte posts: {} MiB ({} MiB before)",
        peak / MIB,
        before / MIB
    );
    assert!(peak < LIMIT_KIB, "convoyd reached {} MiB", peak / MIB);
    // Each client, having sent its whole body, reads the refusal.
    for (path, answer) in answers {
        assert!(
            ["401", "404", "413"]
                .iter()
                .any(|status| answer.starts_with(&format!("HTTP/1.1 {status}"))),
            "{path}: {answer}"
        );
    }
    // And the controller still answers.
    site.admin().hosts().await.unwrap();
}

/// Opens a connection, sends `partial` and waits until convoyd closes it; how long that took,
/// or None if it was still open after `within`.
async fn time_to_close(url: &str, partial: &'static [u8], within: Duration) -> Option<Duration> {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let started = Instant::now();
    stream.write_all(partial).await.expect("send");
    let mut sink = [0u8; 1024];
    let closed = async {
        // EOF or a reset both mean closed; an answer (408) may come first.
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(within, closed)
        .await
        .ok()
        .map(|()| started.elapsed())
}

#[tokio::test]
async fn half_open_and_silent_connections_are_closed() {
    const HEADER: Duration = Duration::from_secs(1);
    const IDLE: Duration = Duration::from_secs(5);
    let site = Site::controller_only(Some(
        "header_timeout_seconds = 1\nidle_timeout_seconds = 5\n",
    ))
    .await;
    let url = site.url();
    // 300 clients stop halfway through a request line or the headers; 20 send nothing.
    let half_open: Vec<_> = (0..300)
        .map(|i| {
            let url = url.clone();
            let partial: &'static [u8] = if i % 2 == 0 {
                b"GET /v1/ho"
            } else {
                b"POST /v3/auth/tokens HTTP/1.1\r\nHost: convoy\r\nContent-Le"
            };
            tokio::spawn(async move { time_to_close(&url, partial, IDLE).await })
        })
        .collect();
    let silent: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { time_to_close(&url, b"", IDLE * 2).await })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for connection in half_open {
        let closed = connection
            .await
            .unwrap()
            .expect("a half-open connection is closed");
        slowest = slowest.max(closed);
    }
    eprintln!("300 half-open connections closed within {slowest:?} (header timeout {HEADER:?})");
    assert!(
        slowest >= HEADER && slowest < HEADER + Duration::from_secs(2),
        "{slowest:?}"
    );
    for connection in silent {
        let closed = connection
            .await
            .unwrap()
            .expect("a silent connection is closed");
        // The server's idle clock starts at its accept, a moment before this client's.
        assert!(
            closed >= IDLE - Duration::from_millis(250) && closed < IDLE * 2,
            "{closed:?}"
        );
    }
    site.admin().hosts().await.unwrap();
}

#[tokio::test]
async fn a_long_poll_outlives_the_timeouts_and_a_stalled_body_does_not() {
    let site = Site::controller_only(Some(
        "header_timeout_seconds = 1\nidle_timeout_seconds = 1\nbody_timeout_seconds = 1\n",
    ))
    .await;
    let token = std::fs::read_to_string(site.controller.agent_token_file()).unwrap();
    let agent = convoy_api::Client::new(&site.url()).unwrap();
    let enrolled = agent
        .enrol(&convoy_api::agent::Enrolment {
            enrolment_token: token.trim().into(),
            hostname: "worker-0".into(),
            personality: convoy_core::host::Personality::Worker,
            zone: None,
            pod: None,
            cluster: None,
            facts: convoy_e2e::host_facts(),
        })
        .await
        .unwrap();
    let agent = agent.with_token(enrolled.credential);
    // The poll is a request under way: no timeout applies to it.
    let started = Instant::now();
    let commands = agent
        .poll_commands("session-1", Duration::from_secs(4))
        .await
        .unwrap();
    assert!(commands.is_empty());
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A body that stops arriving is answered 408 within the body timeout.
    let started = Instant::now();
    let address = site.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            b"POST /v3/auth/tokens HTTP/1.1\r\nHost: convoy\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"auth\":",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("convoyd answers within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"body_timeout\""), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_one_to_end() {
    let site = Site::controller_only(Some("max_connections = 4\n")).await;
    let address = site.url().trim_start_matches("http://").to_string();
    let mut held = vec![];
    for _ in 0..4 {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    let request = b"GET /v3 HTTP/1.1\r\nHost: convoy\r\nConnection: close\r\n\r\n";
    let mut waiting = TcpStream::connect(&address).await.unwrap();
    waiting.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let early =
        tokio::time::timeout(Duration::from_millis(500), waiting.read_to_end(&mut answer)).await;
    assert!(
        early.is_err(),
        "answered beyond the cap: {}",
        String::from_utf8_lossy(&answer)
    );
    held.pop();
    tokio::time::timeout(Duration::from_secs(5), waiting.read_to_end(&mut answer))
        .await
        .expect("answered once a connection ended")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{answer:?}"
    );
}

/// Threads of convoyd's tokio runtime (its workers and its blocking pool) right now.
fn runtime_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("convoyd runs")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("tokio-"))
        .count()
}

/// CPU time convoyd has used, in seconds (user and system; clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("convoyd runs");
    // The fields after the command name (which is in parentheses): utime is the 12th, stime
    // the 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[tokio::test]
async fn bad_logins_hash_one_password_per_core_at_a_time() {
    const LOGINS: usize = 100;
    // The throttle is opened wide: this test is about the logins that do get hashed.
    let site = Site::controller_only(Some(
        "login_failures_per_user = 1000\nlogin_failures_per_source = 1000\n",
    ))
    .await;
    let pid = site.controller.pid().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    let memory_before = status_figure(pid, "VmHWM");
    let threads_before = runtime_threads(pid);
    // One argon2 hash takes 19 MiB; a core's worth of slack beyond one hash per core.
    let memory_limit = memory_before + (cores as u64 + 1) * 20 * MIB;
    // The runtime's workers (one per core) and its blocking threads: one hashing per core,
    // and as many again that have just ended a hash and are not yet back in the pool when the
    // next turn starts.
    let thread_limit = cores + 2 * cores + 2;
    let cpu_before = cpu_seconds(pid);
    let logins: Vec<_> = (0..LOGINS)
        .map(|i| {
            let client = convoy_api::Client::new(&site.url()).unwrap();
            tokio::spawn(async move {
                let name = if i % 2 == 0 { "admin" } else { "nobody" };
                client.login(name, "not-the-password").await
            })
        })
        .collect();
    let started = Instant::now();
    let all_done = async {
        let mut results = vec![];
        for login in logins {
            results.push(login.await.unwrap());
        }
        results
    };
    let mut all_done = std::pin::pin!(all_done);
    let mut peak_threads = threads_before;
    let results = loop {
        tokio::select! {
            results = &mut all_done => break results,
            _ = tokio::time::sleep(Duration::from_millis(5)) => {
                peak_threads = peak_threads.max(runtime_threads(pid));
                let memory = status_figure(pid, "VmHWM");
                assert!(
                    peak_threads <= thread_limit && memory <= memory_limit,
                    "{peak_threads} runtime threads (limit {thread_limit}), {} MiB (limit {} MiB)",
                    memory / MIB,
                    memory_limit / MIB
                );
            }
        }
    };
    let elapsed = started.elapsed();
    let memory = status_figure(pid, "VmHWM");
    let cpu = cpu_seconds(pid) - cpu_before;
    eprintln!(
        "{LOGINS} bad logins in {elapsed:.2?} on {cores} cores, {cpu:.2} s of CPU: at most \
         {peak_threads} runtime threads ({threads_before} before), peak memory {} MiB ({} MiB \
         before)",
        memory / MIB,
        memory_before / MIB
    );
    assert!(memory <= memory_limit, "{} MiB", memory / MIB);
    for result in results {
        assert_eq!(result.unwrap_err().status(), Some(401));
    }
}

#[tokio::test]
async fn a_kept_alive_connection_outlives_the_header_timeout_between_requests() {
    let site = Site::controller_only(Some(
        "header_timeout_seconds = 1\nidle_timeout_seconds = 4\n",
    ))
    .await;
    let address = site.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let request = b"GET /v3 HTTP/1.1\r\nHost: convoy\r\n\r\n";
    for pause in [Duration::ZERO, Duration::from_secs(2)] {
        // The pause between requests is what is tested: idle, but within the idle timeout.
        tokio::time::sleep(pause).await;
        stream.write_all(request).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
            .await
            .expect("answered")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "after {pause:?}: {answer}"
        );
    }
}
