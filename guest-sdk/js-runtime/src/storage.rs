//! Storage: wasi:keyvalue's store, atomics and batch, and the contract's own storage
//! interface. A bucket is a JS object with `get`/`set`/`delete`/`exists` carrying the
//! number of the resource it stands for.
use std::cell::RefCell;

use rquickjs::function::This;
use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::{Array, Ctx, Exception, Function, Object, Value};

use crate::convert::{bytes_of, bytes_to_js, throw_message};
use crate::imports::native_module;
use crate::nsbox::tenant::storage;
use crate::wasi::keyvalue::store::{Bucket, Error as KvError};
use crate::wasi::keyvalue::{atomics, batch};

thread_local! {
    /// The buckets opened, by the number their JS objects carry.
    static BUCKETS: RefCell<Vec<Bucket>> = const { RefCell::new(Vec::new()) };
}

const BUCKET_KEY: &str = "__nsbox_bucket";

/// Throws wasi:keyvalue's error as the bindings do: `payload` is `{tag, val}`.
fn throw_kv<'js, T>(ctx: &Ctx<'js>, error: KvError) -> rquickjs::Result<T> {
    let payload = Object::new(ctx.clone())?;
    let message = match error {
        KvError::NoSuchStore => {
            payload.set("tag", "no-such-store")?;
            "no such store".to_owned()
        }
        KvError::AccessDenied => {
            payload.set("tag", "access-denied")?;
            "access denied".to_owned()
        }
        KvError::Other(message) => {
            payload.set("tag", "other")?;
            payload.set("val", message.clone())?;
            message
        }
    };
    let thrown = Exception::from_message(ctx.clone(), &message)?;
    thrown.as_object().set("payload", payload)?;
    Err(ctx.throw(thrown.into_value()))
}

/// Runs `f` on the bucket `object` stands for, then its `result` as the bindings give it.
fn on_bucket<'js, T>(
    ctx: &Ctx<'js>,
    object: &Object<'js>,
    f: impl FnOnce(&Bucket) -> Result<T, KvError>,
) -> rquickjs::Result<T> {
    let index: Option<u32> = object.get(BUCKET_KEY)?;
    let done =
        BUCKETS.with(|buckets| index.and_then(|index| buckets.borrow().get(index as usize).map(f)));
    match done {
        Some(Ok(value)) => Ok(value),
        Some(Err(error)) => throw_kv(ctx, error),
        None => throw_message(ctx, "not a bucket"),
    }
}

fn open<'js>(ctx: Ctx<'js>, identifier: String) -> rquickjs::Result<Object<'js>> {
    let bucket = match crate::wasi::keyvalue::store::open(&identifier) {
        Ok(bucket) => bucket,
        Err(error) => return throw_kv(&ctx, error),
    };
    let index = BUCKETS.with(|buckets| {
        let mut buckets = buckets.borrow_mut();
        buckets.push(bucket);
        buckets.len() - 1
    });
    let object = Object::new(ctx.clone())?;
    object.set(BUCKET_KEY, index as u32)?;
    object.set("get", Function::new(ctx.clone(), get)?)?;
    object.set("set", Function::new(ctx.clone(), set)?)?;
    object.set("delete", Function::new(ctx.clone(), delete)?)?;
    object.set("exists", Function::new(ctx.clone(), exists)?)?;
    Ok(object)
}

fn get<'js>(ctx: Ctx<'js>, this: This<Object<'js>>, key: String) -> rquickjs::Result<Value<'js>> {
    match on_bucket(&ctx, &this.0, |bucket| bucket.get(&key))? {
        Some(bytes) => bytes_to_js(&ctx, bytes),
        None => Ok(Value::new_null(ctx.clone())),
    }
}

fn set<'js>(
    ctx: Ctx<'js>,
    this: This<Object<'js>>,
    key: String,
    value: Value<'js>,
) -> rquickjs::Result<()> {
    let bytes = bytes_of(value);
    on_bucket(&ctx, &this.0, |bucket| bucket.set(&key, &bytes))
}

fn delete<'js>(ctx: Ctx<'js>, this: This<Object<'js>>, key: String) -> rquickjs::Result<()> {
    on_bucket(&ctx, &this.0, |bucket| bucket.delete(&key))
}

fn exists<'js>(ctx: Ctx<'js>, this: This<Object<'js>>, key: String) -> rquickjs::Result<bool> {
    on_bucket(&ctx, &this.0, |bucket| bucket.exists(&key))
}

fn list_keys<'js>(
    ctx: Ctx<'js>,
    bucket: Object<'js>,
    prefix: String,
    cursor: Option<String>,
    limit: u32,
) -> rquickjs::Result<Object<'js>> {
    let page = on_bucket(&ctx, &bucket, |b| {
        storage::list_keys(b, &prefix, cursor.as_deref(), limit)
    })?;
    let object = Object::new(ctx.clone())?;
    object.set("keys", page.keys)?;
    object.set("cursor", page.cursor)?;
    Ok(object)
}

/// `null` or `undefined` as none, anything else as its bytes.
fn optional_bytes(value: Value<'_>) -> Option<Vec<u8>> {
    if value.is_null() || value.is_undefined() {
        None
    } else {
        Some(bytes_of(value))
    }
}

fn compare_and_swap<'js>(
    ctx: Ctx<'js>,
    bucket: Object<'js>,
    key: String,
    expected: Value<'js>,
    new: Value<'js>,
) -> rquickjs::Result<bool> {
    let (expected, new) = (optional_bytes(expected), optional_bytes(new));
    on_bucket(&ctx, &bucket, |b| {
        storage::compare_and_swap(b, &key, expected.as_deref(), new.as_deref())
    })
}

fn increment<'js>(
    ctx: Ctx<'js>,
    bucket: Object<'js>,
    key: String,
    delta: f64,
) -> rquickjs::Result<f64> {
    Ok(on_bucket(&ctx, &bucket, |b| atomics::increment(b, &key, delta as u64))? as f64)
}

fn get_many<'js>(
    ctx: Ctx<'js>,
    bucket: Object<'js>,
    keys: Vec<String>,
) -> rquickjs::Result<Array<'js>> {
    let found = on_bucket(&ctx, &bucket, |b| batch::get_many(b, &keys))?;
    let array = Array::new(ctx.clone())?;
    for (i, entry) in found.into_iter().enumerate() {
        let value = match entry {
            Some((key, bytes)) => {
                let pair = Array::new(ctx.clone())?;
                pair.set(0, key)?;
                pair.set(1, bytes_to_js(&ctx, bytes)?)?;
                pair.into_value()
            }
            None => Value::new_null(ctx.clone()),
        };
        array.set(i, value)?;
    }
    Ok(array)
}

fn set_many<'js>(ctx: Ctx<'js>, bucket: Object<'js>, pairs: Array<'js>) -> rquickjs::Result<()> {
    let mut entries = Vec::with_capacity(pairs.len());
    for pair in pairs.iter::<Array>() {
        let pair = pair?;
        entries.push((pair.get::<String>(0)?, bytes_of(pair.get::<Value>(1)?)));
    }
    on_bucket(&ctx, &bucket, |b| batch::set_many(b, &entries))
}

fn delete_many<'js>(ctx: Ctx<'js>, bucket: Object<'js>, keys: Vec<String>) -> rquickjs::Result<()> {
    on_bucket(&ctx, &bucket, |b| batch::delete_many(b, &keys))
}

native_module!(StoreModule { "open" => open });
native_module!(AtomicsModule { "increment" => increment });
native_module!(BatchModule { "getMany" => get_many, "setMany" => set_many, "deleteMany" => delete_many });
native_module!(StorageModule { "listKeys" => list_keys, "compareAndSwap" => compare_and_swap });
