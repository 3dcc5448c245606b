//! "Shared-data keys bounded by config", where it can be seen: Envoy has
//! no view of proxy-wasm shared data, so the soak's filter config is run
//! natively against the core's in-memory host (`MemHost`, whose shared
//! store counts its keys), the soak's own request mix replayed through it
//! with an answer for every request that goes upstream, the clock moving
//! 2 ms per request (entries expire, slots are reused). The bound, from
//! the config: the keys `Filter::create_tables` makes up front, plus the
//! keys a request may add, each a slot of a fixed table (cache data:
//! slots × ways; coalescing results: one per slot).
//!
//! Not replayed: quotes (a batch leaves from the timer, with a host
//! call) and orders (a budget waits for cost-control's lease): their
//! tables (budget slots) are among those made up front.

use optimizer_core::config::parse;
use optimizer_core::mem_host::MemHost;
use optimizer_core::pipeline::{
    on_done, on_request_headers, on_response_body, on_response_headers, Filter, Verdict, Worker,
};
use serde_json::Value;

use crate::mix::{Kind, Mix};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCheck {
    /// Requests replayed.
    pub replayed: u64,
    /// Keys after `create_tables`.
    pub created: usize,
    /// Keys after the replay, and the most they may be.
    pub after: usize,
    pub bound: usize,
}

impl KeyCheck {
    pub fn pass(&self) -> bool {
        self.after <= self.bound
    }
}

pub fn check(filter_json: &Value, mix: &Mix, n: u64) -> Result<KeyCheck, String> {
    // Routing providers' addresses as Envoy gets them (any ports do).
    let ports = e2e::envoy_config::Ports {
        listen: 1,
        admin: 2,
        plain: 3,
        demo: 4,
        demo_b: 5,
        control: 6,
    };
    let json = e2e::envoy_config::with_addresses(filter_json, &ports);
    let cfg =
        parse(json.to_string().as_bytes()).map_err(|e| format!("the soak's filter config: {e}"))?;
    let mut host = MemHost::new();
    let filter = Filter::new(cfg, &mut host);
    filter
        .create_tables(&mut host)
        .map_err(|e| format!("create_tables: {e:?}"))?;
    let created = host.shared.borrow().len();
    let c = &filter.config;
    let bound = created
        + (c.cache_store.slots as usize) * (c.cache_store.ways as usize)
        + c.coalesce_store.slots as usize;
    let mut worker = Worker::new(&filter.config, &mut host);
    let body = vec![b'x'; 1024];
    let mut replayed = 0;
    for i in 0..n {
        let req = mix.request(i);
        if matches!(req.kind, Kind::Quote | Kind::Order) {
            continue;
        }
        replayed += 1;
        host.now_ms += 2;
        host.replies.clear();
        let mut headers = vec![
            (":method", req.method()),
            (":path", req.target.as_str()),
            (":authority", "soak"),
            (":scheme", "http"),
            ("x-tenant-id", req.tenant),
        ];
        if let Some(p) = req.priority {
            headers.push(("x-priority", p));
        }
        host.request_headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        let stream = (i + 1) as u32;
        let v = on_request_headers(&filter, &mut worker, &mut host, stream);
        if v == Verdict::Continue && worker.requests.contains_key(&stream) {
            host.response_headers = vec![
                (":status".into(), b"200".to_vec()),
                ("content-type".into(), b"application/json".to_vec()),
                ("cache-control".into(), b"max-age=60".to_vec()),
                ("content-length".into(), b"1024".to_vec()),
            ];
            host.response_chunk = body.clone();
            on_response_headers(&filter, &mut worker, &mut host, stream, false);
            on_response_body(&filter, &mut worker, &mut host, stream, body.len(), true);
        }
        on_done(&filter, &mut worker, &mut host, stream);
    }
    let after = host.shared.borrow().len();
    Ok(KeyCheck {
        replayed,
        created,
        after,
        bound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soak_config_keeps_its_keys_in_bounds() {
        let k = check(&crate::mix::filter_config(), &Mix::new(3), 4000).unwrap();
        assert!(k.created > 0 && k.after >= k.created, "{k:?}");
        assert!(k.pass(), "{k:?}");
    }
}
