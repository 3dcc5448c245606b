//! Raw proxy-wasm imports with error returns instead of panics.
//!
//! The SDK's `hostcalls` panic on any status they do not expect and on
//! header values that are not UTF-8; a gateway filter must not trap on a
//! client's bytes or a host's surprise. The hot-path calls are therefore
//! declared here again and every status is handed back as a number.
//! Memory the host returns was allocated through the SDK's exported
//! `proxy_on_memory_allocate` (a `Vec` allocation), so it is freed by
//! rebuilding that `Vec`.

#![allow(clashing_extern_declarations)]

use std::ptr::{null, null_mut};

use optimizer_core::header_list::HeaderList;
use optimizer_core::header_pairs;

pub const OK: u32 = 0;
pub const NOT_FOUND: u32 = 1;
pub const CAS_MISMATCH: u32 = 8;

pub const REQUEST_HEADERS: u32 = 0;
pub const RESPONSE_HEADERS: u32 = 2;
pub const STREAM_REQUEST: u32 = 0;
pub const BUFFER_REQUEST_BODY: u32 = 0;
pub const BUFFER_RESPONSE_BODY: u32 = 1;
pub const BUFFER_CALL_RESPONSE_BODY: u32 = 4;
pub const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
pub const CALL_RESPONSE_HEADERS: u32 = 6;
pub const METRIC_COUNTER: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, data: *const u8, size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(out: *mut u64) -> u32;
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        out: *mut *mut u8,
        out_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map: u32, out: *mut *mut u8, out_size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_add_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        out: *mut *mut u8,
        out_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        out: *mut *mut u8,
        out_size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        out: *mut *mut u8,
        out_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name: *const u8,
        name_size: usize,
        out: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_get_metric(metric_id: u32, out: *mut u64) -> u32;
    fn proxy_set_property(
        path: *const u8,
        path_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_http_call(
        upstream: *const u8,
        upstream_size: usize,
        headers: *const u8,
        headers_size: usize,
        body: *const u8,
        body_size: usize,
        trailers: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        token: *mut u32,
    ) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_size: usize,
        args: *const u8,
        args_size: usize,
        out: *mut *mut u8,
        out_size: *mut usize,
    ) -> u32;
}

/// Takes ownership of a host-returned buffer.
///
/// # Safety
/// `ptr`/`size` must come from a host call that allocated them through
/// `proxy_on_memory_allocate`, and must not be used again.
unsafe fn take(ptr: *mut u8, size: usize) -> Vec<u8> {
    if ptr.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(ptr, size, size)
    }
}

pub fn log(level: u32, message: &str) {
    // SAFETY: pointer and length of a live &str.
    unsafe {
        proxy_log(level, message.as_ptr(), message.len());
    }
}

pub fn now_nanos() -> Option<u64> {
    let mut t = 0u64;
    // SAFETY: `t` is a valid out pointer.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut t) };
    (status == OK).then_some(t)
}

pub fn header(map: u32, name: &str) -> Result<Option<Vec<u8>>, u32> {
    let mut ptr = null_mut();
    let mut size = 0usize;
    // SAFETY: valid key slice and out pointers; the buffer is taken once.
    let status =
        unsafe { proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut ptr, &mut size) };
    match status {
        OK => Ok(Some(unsafe { take(ptr, size) })),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

pub fn headers(map: u32) -> Result<HeaderList, u32> {
    let mut ptr = null_mut();
    let mut size = 0usize;
    // SAFETY: valid out pointers; the buffer is taken once.
    let status = unsafe { proxy_get_header_map_pairs(map, &mut ptr, &mut size) };
    if status != OK {
        return Err(status);
    }
    let bytes = unsafe { take(ptr, size) };
    Ok(HeaderList::from_wire(bytes).unwrap_or_default())
}

pub fn replace_header(map: u32, name: &str, value: &[u8]) -> u32 {
    // SAFETY: valid slices.
    unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    }
}

pub fn remove_header(map: u32, name: &str) -> u32 {
    // SAFETY: valid slice.
    unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) }
}

pub fn add_header(map: u32, name: &str, value: &[u8]) -> u32 {
    // SAFETY: valid slices.
    unsafe {
        proxy_add_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    }
}

pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, u32> {
    property_at(&path.join("\0"))
}

/// [`property`] with the path already joined by NUL: a path read on every
/// request (Kong's raw `request.path`) is not joined anew each time.
pub fn property_at(encoded: &str) -> Result<Option<Vec<u8>>, u32> {
    let mut ptr = null_mut();
    let mut size = 0usize;
    // SAFETY: valid slice and out pointers; the buffer is taken once.
    let status =
        unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut ptr, &mut size) };
    match status {
        OK => Ok(Some(unsafe { take(ptr, size) })),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

/// Set a property (`path` segments joined by NUL, as `property` reads).
pub fn set_property(path: &[&str], value: &[u8]) -> u32 {
    let encoded = path.join("\0");
    // SAFETY: pointers and lengths of live slices.
    unsafe { proxy_set_property(encoded.as_ptr(), encoded.len(), value.as_ptr(), value.len()) }
}

/// Call a host's foreign function; its result bytes are dropped.
pub fn call_foreign(name: &str, args: &[u8]) -> u32 {
    let mut ptr = null_mut();
    let mut size = 0usize;
    // SAFETY: valid slices and out pointers; a returned buffer is taken
    // once (and freed).
    let status = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            args.as_ptr(),
            args.len(),
            &mut ptr,
            &mut size,
        )
    };
    if status == OK {
        drop(unsafe { take(ptr, size) });
    }
    status
}

pub fn shared_get(key: &str) -> Result<Option<(Vec<u8>, u32)>, u32> {
    let mut ptr = null_mut();
    let mut size = 0usize;
    let mut cas = 0u32;
    // SAFETY: valid slice and out pointers; the buffer is taken once.
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut ptr, &mut size, &mut cas) };
    match status {
        OK => Ok(Some((unsafe { take(ptr, size) }, cas))),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

pub fn shared_set(key: &str, value: &[u8], cas: u32) -> u32 {
    // SAFETY: valid slices.
    unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) }
}

pub fn send_local_response(status: u32, headers: &[(&str, &[u8])], body: &[u8]) -> u32 {
    let encoded = header_pairs::encode(headers);
    // SAFETY: valid slices; details are empty.
    unsafe {
        proxy_send_local_response(
            status,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            encoded.as_ptr(),
            encoded.len(),
            -1,
        )
    }
}

pub fn buffer(buffer_type: u32, start: usize, max_size: usize) -> Result<Vec<u8>, u32> {
    let mut ptr = null_mut();
    let mut size = 0usize;
    // SAFETY: valid out pointers; the buffer is taken once.
    let status =
        unsafe { proxy_get_buffer_bytes(buffer_type, start, max_size, &mut ptr, &mut size) };
    match status {
        OK => Ok(unsafe { take(ptr, size) }),
        NOT_FOUND => Ok(Vec::new()),
        s => Err(s),
    }
}

/// Replace `size` bytes at `start` of a buffer with `data`.
pub fn set_buffer(buffer_type: u32, start: usize, size: usize, data: &[u8]) -> u32 {
    // SAFETY: `data` outlives the call; the host copies it.
    unsafe { proxy_set_buffer_bytes(buffer_type, start, size, data.as_ptr(), data.len()) }
}

pub fn set_tick_period(ms: u32) -> u32 {
    // SAFETY: plain value call.
    unsafe { proxy_set_tick_period_milliseconds(ms) }
}

pub fn set_effective_context(id: u32) -> u32 {
    // SAFETY: plain value call.
    unsafe { proxy_set_effective_context(id) }
}

pub fn continue_request() -> u32 {
    // SAFETY: plain value call.
    unsafe { proxy_continue_stream(STREAM_REQUEST) }
}

pub fn define_counter(name: &str) -> Result<u32, u32> {
    let mut id = 0u32;
    // SAFETY: valid slice and out pointer.
    let status = unsafe { proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id) };
    if status == OK {
        Ok(id)
    } else {
        Err(status)
    }
}

pub fn increment_metric(id: u32, delta: i64) -> u32 {
    // SAFETY: plain value call.
    unsafe { proxy_increment_metric(id, delta) }
}

/// A metric's value as the host keeps it. The host writes it into our
/// word: no bytes come back, so no allocation in the VM (on Envoy about a
/// tenth of the price of a shared-data read, README "Host calls").
pub fn get_metric(id: u32) -> Option<u64> {
    let mut value = 0u64;
    // SAFETY: valid out pointer to a u64.
    let status = unsafe { proxy_get_metric(id, &mut value) };
    (status == OK).then_some(value)
}

/// Start an HTTP call; the answer comes to `proxy_on_http_call_response`
/// with the returned token.
pub fn http_call(
    upstream: &str,
    headers: &[(&str, &[u8])],
    body: Option<&[u8]>,
    timeout_ms: u32,
) -> Result<u32, u32> {
    let headers = header_pairs::encode(headers);
    let trailers = header_pairs::encode(&[]);
    let body = body.unwrap_or_default();
    let mut token = 0u32;
    // SAFETY: pointers and lengths of live slices, a valid out pointer.
    let status = unsafe {
        proxy_http_call(
            upstream.as_ptr(),
            upstream.len(),
            headers.as_ptr(),
            headers.len(),
            body.as_ptr(),
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            timeout_ms,
            &mut token,
        )
    };
    if status == OK {
        Ok(token)
    } else {
        Err(status)
    }
}
