//! The monitor's one loop: poll over its signalfd, its listening socket and (until the daemon
//! commits) its stdin. Single-threaded on purpose: there is one pod and little to do.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;
use std::time::Duration;

use crius_sys::fds;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use super::containers;
use super::lines::LineReader;
use super::log::log;
use super::pod::Pod;
use crate::protocol::{COMMIT, MAX_LINE, Op, Response, decode_request, encode_line};

/// A client gets this long to send its request and read the reply: the loop serves one
/// connection at a time.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

enum Flow {
    Continue,
    /// Torn down (or to be torn down): leave with this code.
    Exit(ExitCode),
}

pub(crate) fn serve(pod: &mut Pod, listener: &UnixListener, signals: &SignalFd, stdin: LineReader) -> ExitCode {
    let mut stdin = Some(stdin);
    loop {
        let (signal_ready, client_ready, stdin_ready, outputs_ready) = {
            let mut fds =
                vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN), PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
            if let Some(stdin) = &stdin {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            let fixed = fds.len();
            let outputs = pod.containers.pollable();
            fds.extend(containers::poll_fds(&outputs));
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log!("poll failed: {e}; tearing down");
                    drop(outputs);
                    return exit_after_teardown(pod, ExitCode::FAILURE);
                }
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            let outputs_ready: Vec<(containers::Key, PollFlags)> = outputs
                .iter()
                .zip(&fds[fixed..])
                .filter_map(|((key, _, _), fd)| Some((*key, fd.revents().filter(|r| !r.is_empty())?)))
                .collect();
            (ready(&fds[0]), ready(&fds[1]), stdin.is_some() && ready(&fds[2]), outputs_ready)
        };
        // Output first: a container's last lines go to its log before its exit is recorded.
        for (key, events) in outputs_ready {
            pod.containers.on_ready(key, events);
        }
        if signal_ready && let Flow::Exit(code) = on_signals(pod, signals) {
            return code;
        }
        if stdin_ready && let Some(reader) = stdin.as_mut() {
            match on_stdin(pod, reader) {
                StdinFlow::Waiting => {}
                StdinFlow::Committed => {
                    stdin = None;
                    detach_stdio();
                    log!("committed by the daemon");
                }
                StdinFlow::Abandoned(code) => return code,
            }
        }
        if client_ready && let Flow::Exit(code) = on_clients(pod, listener) {
            return code;
        }
    }
}

fn exit_after_teardown(pod: &mut Pod, code: ExitCode) -> ExitCode {
    match pod.teardown() {
        Ok(()) => code,
        Err(_) => ExitCode::FAILURE,
    }
}

fn on_signals(pod: &mut Pod, signals: &SignalFd) -> Flow {
    loop {
        match signals.read_signal() {
            Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => pod.reap_children(),
                Ok(signal @ (Signal::SIGTERM | Signal::SIGINT)) => {
                    log!("{signal}: tearing the pod down");
                    return Flow::Exit(exit_after_teardown(pod, ExitCode::SUCCESS));
                }
                _ => {}
            },
            Ok(None) => return Flow::Continue,
            Err(Errno::EINTR) => {}
            Err(e) => {
                log!("reading signals failed: {e}");
                return Flow::Continue;
            }
        }
    }
}

enum StdinFlow {
    Waiting,
    Committed,
    Abandoned(ExitCode),
}

/// Before commit, the daemon may still give up: end of input or any other line means "undo".
fn on_stdin(pod: &mut Pod, stdin: &mut LineReader) -> StdinFlow {
    if let Err(e) = stdin.fill() {
        log!("reading stdin failed ({e}): the daemon is gone; undoing the pod");
        return StdinFlow::Abandoned(exit_after_teardown(pod, ExitCode::SUCCESS));
    }
    match stdin.take_line() {
        Some(line) if line == COMMIT => StdinFlow::Committed,
        Some(line) => {
            log!("expected {COMMIT:?} from the daemon, got {line:?}: undoing the pod");
            StdinFlow::Abandoned(exit_after_teardown(pod, ExitCode::SUCCESS))
        }
        None if stdin.at_eof() => {
            log!("the daemon closed stdin before committing: undoing the pod");
            StdinFlow::Abandoned(exit_after_teardown(pod, ExitCode::SUCCESS))
        }
        None => StdinFlow::Waiting,
    }
}

/// After commit nothing more comes from or goes to the daemon's pipes; keeping them would only
/// get EPIPE or hold the daemon's end open. stderr stays on the log file.
fn detach_stdio() {
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null");
    let result = null.map_err(|e| e.to_string()).and_then(|null| {
        fds::redirect_stdin(&null).and_then(|()| fds::redirect_stdout(&null)).map_err(|e| e.to_string())
    });
    if let Err(e) = result {
        log!("pointing stdio at /dev/null failed: {e}");
    }
}

fn on_clients(pod: &mut Pod, listener: &UnixListener) -> Flow {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Flow::Exit(code) = serve_one(pod, stream) {
                    return Flow::Exit(code);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Flow::Continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                log!("accepting a connection failed: {e}");
                return Flow::Continue;
            }
        }
    }
}

/// One request, one reply, then the connection is closed.
fn serve_one(pod: &mut Pod, mut stream: UnixStream) -> Flow {
    let configured = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(CLIENT_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(CLIENT_TIMEOUT)));
    if configured.is_err() {
        return Flow::Continue;
    }
    let Some(line) = read_request(&mut stream) else {
        return Flow::Continue;
    };
    let (response, flow) = match decode_request(&line) {
        Ok(Op::Status) => (status(pod), Flow::Continue),
        Ok(Op::Shutdown) => {
            log!("shutdown requested");
            let response = match pod.teardown() {
                Ok(()) => Response::ok(),
                Err(problems) => Response::error(format!("teardown incomplete: {problems}")),
            };
            let code = if response.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
            (response, Flow::Exit(code))
        }
        Ok(Op::CreateContainer { launch }) => match pod.containers.create(&launch) {
            Ok(init) => (Response { container: Some(init), ..Response::ok() }, Flow::Continue),
            Err(e) => (Response::error(e), Flow::Continue),
        },
        Ok(Op::StartContainer { container_id }) => (reply(pod.containers.start(&container_id)), Flow::Continue),
        Ok(Op::ReopenLog { container_id }) => (reply(pod.containers.reopen_log(&container_id)), Flow::Continue),
        Ok(Op::Attach { container_id, stdin, stdout, stderr }) => {
            // The connection stays open as the attach stream: the reply is its first line.
            let wants = containers::Wants { stdin, stdout, stderr };
            let accepted = pod.containers.check_attach(&container_id, wants);
            let ok = accepted.is_ok();
            if stream.write_all(encode_line(&reply(accepted)).as_bytes()).is_ok()
                && ok
                && let Err(e) = pod.containers.attach(&container_id, stream, wants)
            {
                log!("attaching to container {container_id}: {e}");
            }
            return Flow::Continue;
        }
        Err(message) => (Response::error(message), Flow::Continue),
    };
    // A client that went away does not change what was done.
    let _ = stream.write_all(encode_line(&response).as_bytes());
    flow
}

fn reply(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => Response::ok(),
        Err(e) => Response::error(e),
    }
}

fn status(pod: &Pod) -> Response {
    Response {
        init_pid: pod.init.as_ref().map(|i| i.pid.as_raw()),
        init_running: Some(pod.init_running()),
        init_exit: pod.init.as_ref().and_then(|i| i.exit),
        ..Response::ok()
    }
}

/// The request line, or None when the client sent nothing usable in time.
fn read_request(stream: &mut UnixStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.contains(&b'\n') {
                    break;
                }
                if buf.len() > MAX_LINE {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    (end > 0).then(|| String::from_utf8_lossy(&buf[..end]).into_owned())
}
