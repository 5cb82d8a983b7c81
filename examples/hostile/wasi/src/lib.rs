//! A hostile tenant: reaches for what the host does not grant. On `fs` it reads a
//! file, on `net` it opens a TCP connection, on `env` it lists the environment; each
//! acks what it got. The component imports `wasi:filesystem` and `wasi:sockets`, which
//! nsbox links with nothing in them (language runtimes import them): the file is not
//! there, the connection is refused, the environment is empty.

use nsbox_guest::App;

fn setup(app: &mut App) {
    app.on("fs", |_, _, ack| {
        let answer = std::fs::read_to_string("/etc/passwd").unwrap_or_else(|e| e.to_string());
        if let Some(ack) = ack {
            let _ = ack.send((answer,));
        }
    });
    app.on("net", |_, _, ack| {
        let answer = match std::net::TcpStream::connect("127.0.0.1:22") {
            Ok(_) => "connected".to_owned(),
            Err(e) => e.to_string(),
        };
        if let Some(ack) = ack {
            let _ = ack.send((answer,));
        }
    });
    app.on("env", |_, _, ack| {
        let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        if let Some(ack) = ack {
            let _ = ack.send((vars,));
        }
    });
}

nsbox_guest::export!(setup);
