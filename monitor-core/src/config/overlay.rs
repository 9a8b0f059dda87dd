//! Values laid over a configuration file while it is read: a table shaped like the
//! file (`{detection = {per_source = {pps = 9000}}}`, the command-line flags given)
//! whose values replace the file's at their key, or fill it in where the file has
//! none. They go through the same deserialization as the file, so a flag's value is
//! checked by the same code and refused in the same words; a value refused is
//! recorded with its key, to be reported as the flag's.
//!
//! The adapter also renames the names an earlier version gave a setting (see
//! `load::LEGACY_NAMES`) as the file is read, so that a value laid at the current
//! name replaces the file's under the old one instead of clashing with it.
//!
//! [`Overlay`] wraps a `Deserializer` and every map it yields; values the table does
//! not touch pass through to the file's deserializer untouched, which keeps its error
//! locations (the line of a bad value) as they are.

use std::{
    cell::{Cell, RefCell},
    fmt,
};

use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer as _, MapAccess, Visitor,
    value::MapDeserializer,
};

/// A value of the table that the setting refused.
#[derive(Debug)]
pub(super) struct Refused {
    /// Its dotted key, e.g. `detection.per_source.pps`.
    pub key: String,
    pub message: String,
}

/// One reading of a file with a table laid over it.
pub(super) struct Layered<'a> {
    over: &'a toml::Table,
    /// (old dotted key, current name): `("connections.scan_interval", "interval")`.
    renames: &'a [(&'a str, &'a str)],
    refused: RefCell<Option<Refused>>,
    replaced: Cell<bool>,
}

impl<'a> Layered<'a> {
    pub(super) fn new(over: &'a toml::Table, renames: &'a [(&'a str, &'a str)]) -> Self {
        Self {
            over,
            renames,
            refused: RefCell::new(None),
            replaced: Cell::new(false),
        }
    }

    /// Deserializes `file` with the table laid over it.
    pub(super) fn deserialize<'de, T, D>(&self, file: D) -> Result<T, D::Error>
    where
        T: de::Deserialize<'de>,
        D: Deserializer<'de>,
    {
        T::deserialize(Overlay {
            inner: file,
            over: Some(self.over),
            path: String::new(),
            layered: self,
        })
    }

    /// Deserializes the table laid over no file (every other setting its default).
    pub(super) fn deserialize_alone<T>(&self) -> Result<T, de::value::Error>
    where
        T: for<'de> de::Deserialize<'de>,
    {
        self.deserialize(MapDeserializer::new(std::iter::empty::<(&str, &str)>()))
    }

    /// The first value of the table that was refused: when deserializing failed, the
    /// reason, rather than the file.
    pub(super) fn refused(&self) -> Option<Refused> {
        self.refused.borrow_mut().take()
    }

    /// Whether a value of the table replaced one the file had (which was then not
    /// checked).
    pub(super) fn replaced(&self) -> bool {
        self.replaced.get()
    }

    fn refuse(&self, key: &str, message: String) {
        let mut refused = self.refused.borrow_mut();
        if refused.is_none() {
            *refused = Some(Refused {
                key: key.to_owned(),
                message,
            });
        }
    }

    fn current_name<'k>(&self, parent: &str, key: &'k str) -> &'k str
    where
        'a: 'k,
    {
        let dotted = join(parent, key);
        self.renames
            .iter()
            .find(|(old, _)| *old == dotted)
            .map_or(key, |(_, current)| current)
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A value of the file at `path`, with `over` (the table's part at that key, if any)
/// laid over it when it is a map.
struct Overlay<'a, D> {
    inner: D,
    over: Option<&'a toml::Table>,
    path: String,
    layered: &'a Layered<'a>,
}

impl<'a, D> Overlay<'a, D> {
    fn wrap<V>(self, visitor: V) -> (D, OverlayVisitor<'a, V>) {
        let visitor = OverlayVisitor {
            visitor,
            over: self.over,
            path: self.path,
            layered: self.layered,
        };
        (self.inner, visitor)
    }

    fn pass<V>(self, visitor: V) -> (D, V) {
        (self.inner, visitor)
    }
}

/// Deserializer methods that hand `inner` the visitor, wrapped (`wrap`: it may see a
/// map) or not (`pass`: a number, a string, a list... is the file's alone).
macro_rules! forward_deserialize {
    ($how:ident: $($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
            let (inner, visitor) = self.$how(visitor);
            inner.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Overlay<'_, D> {
    type Error = D::Error;

    forward_deserialize! { wrap:
        deserialize_any();
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_option();
        deserialize_newtype_struct(name: &'static str);
    }

    forward_deserialize! { pass:
        deserialize_bool(); deserialize_i8(); deserialize_i16(); deserialize_i32();
        deserialize_i64(); deserialize_i128(); deserialize_u8(); deserialize_u16();
        deserialize_u32(); deserialize_u64(); deserialize_u128(); deserialize_f32();
        deserialize_f64(); deserialize_char(); deserialize_str(); deserialize_string();
        deserialize_bytes(); deserialize_byte_buf(); deserialize_unit();
        deserialize_unit_struct(name: &'static str); deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Visitor methods handed on to `self.visitor` as they are.
macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

/// Visitor methods that carry no value, handed on as they are.
macro_rules! forward_visit_common {
    () => {
        forward_visit! {
            visit_bool(bool); visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64);
            visit_i128(i128); visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64);
            visit_u128(u128); visit_f32(f32); visit_f64(f64); visit_char(char);
            visit_bytes(&[u8]); visit_borrowed_bytes(&'de [u8]); visit_byte_buf(Vec<u8>);
        }

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.visitor.expecting(f)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            self.visitor.visit_none()
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            self.visitor.visit_unit()
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            self.visitor.visit_seq(seq)
        }

        fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
            self.visitor.visit_enum(data)
        }
    };
}

struct OverlayVisitor<'a, V> {
    visitor: V,
    over: Option<&'a toml::Table>,
    path: String,
    layered: &'a Layered<'a>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for OverlayVisitor<'_, V> {
    type Value = V::Value;

    forward_visit_common!();

    forward_visit! {
        visit_str(&str); visit_borrowed_str(&'de str); visit_string(String);
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_some(Overlay {
            inner: deserializer,
            over: self.over,
            path: self.path,
            layered: self.layered,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.visitor.visit_newtype_struct(Overlay {
            inner: deserializer,
            over: self.over,
            path: self.path,
            layered: self.layered,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(OverlayMap {
            file: Some(map),
            over: self.over,
            path: self.path,
            layered: self.layered,
            key: None,
            seen: Vec::new(),
            rest: None,
            laid: None,
        })
    }
}

/// A map of the file (`file`; `None` once it has no more keys), then the keys of the
/// table it did not have.
struct OverlayMap<'a, M> {
    file: Option<M>,
    over: Option<&'a toml::Table>,
    path: String,
    layered: &'a Layered<'a>,
    /// The current name of the file's key just read, when it is text.
    key: Option<String>,
    /// Keys of the table that the file had.
    seen: Vec<String>,
    rest: Option<toml::map::Iter<'a, String, toml::Value>>,
    /// The table's key just yielded past the file's keys, and its value.
    laid: Option<(String, &'a toml::Value)>,
}

impl<'de, M: MapAccess<'de>> MapAccess<'de> for OverlayMap<'_, M> {
    type Error = M::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, M::Error> {
        // Kept here when the file has no more keys, for the table's.
        let mut seed = Some(seed);
        if let Some(file) = &mut self.file {
            let key_seed = KeySeed {
                seed: &mut seed,
                parent: &self.path,
                layered: self.layered,
                name: &mut self.key,
            };
            match file.next_key_seed(key_seed)? {
                Some(key) => {
                    if let (Some(name), Some(over)) = (&self.key, self.over)
                        && over.contains_key(name)
                    {
                        self.seen.push(name.clone());
                    }
                    return Ok(Some(key));
                }
                None => self.file = None,
            }
        }
        let Some(over) = self.over else {
            return Ok(None);
        };
        let rest = self.rest.get_or_insert_with(|| over.iter());
        let Some((name, value)) = rest.by_ref().find(|(name, _)| !self.seen.contains(name)) else {
            return Ok(None);
        };
        let Some(seed) = seed else {
            return Err(de::Error::custom("a key was read twice"));
        };
        let key = join(&self.path, name);
        let yielded = seed
            .deserialize(name.as_str().into_deserializer())
            .map_err(|err: de::value::Error| {
                self.layered.refuse(&key, err.to_string());
                de::Error::custom(err)
            })?;
        self.laid = Some((key, value));
        Ok(Some(yielded))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, M::Error> {
        if let Some((key, value)) = self.laid.take() {
            return laid_value(seed, value, key, self.layered);
        }
        let Some(file) = &mut self.file else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        let name = self.key.take();
        let key = join(&self.path, name.as_deref().unwrap_or_default());
        match name.and_then(|name| self.over?.get(&name)) {
            Some(toml::Value::Table(over)) => file.next_value_seed(OverlaySeed {
                seed,
                over: Some(over),
                path: key,
                layered: self.layered,
            }),
            Some(value) => {
                // The file's value is skipped; `load` checks the file alone after.
                self.layered.replaced.set(true);
                file.next_value::<IgnoredAny>()?;
                laid_value(seed, value, key, self.layered)
            }
            None => file.next_value_seed(OverlaySeed {
                seed,
                over: None,
                path: key,
                layered: self.layered,
            }),
        }
    }
}

/// Deserializes a value of the table where the file has none (or one it replaces).
fn laid_value<'de, V: DeserializeSeed<'de>, E: de::Error>(
    seed: V,
    value: &toml::Value,
    key: String,
    layered: &Layered<'_>,
) -> Result<V::Value, E> {
    match value {
        // A section the file lacks: its keys are laid over nothing.
        toml::Value::Table(over) => seed
            .deserialize(Overlay {
                inner: MapDeserializer::new(std::iter::empty::<(&str, &str)>()),
                over: Some(over),
                path: key,
                layered,
            })
            .map_err(|err: de::value::Error| E::custom(err)),
        value => seed.deserialize(value.clone()).map_err(|err| {
            let message = err.message().to_owned();
            layered.refuse(&key, message.clone());
            E::custom(message)
        }),
    }
}

/// Hands the file's value to `seed` with the table's part laid over it.
struct OverlaySeed<'a, S> {
    seed: S,
    over: Option<&'a toml::Table>,
    path: String,
    layered: &'a Layered<'a>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for OverlaySeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Overlay {
            inner: deserializer,
            over: self.over,
            path: self.path,
            layered: self.layered,
        })
    }
}

/// A key of the file: renamed to the setting's current name and noted in `name` as it
/// is read, inside the file's own key reading so that an unknown key keeps its line.
struct KeySeed<'k, S> {
    /// Taken when the file has a key.
    seed: &'k mut Option<S>,
    parent: &'k str,
    layered: &'k Layered<'k>,
    name: &'k mut Option<String>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        let Some(seed) = self.seed.take() else {
            return Err(de::Error::custom("a key was read twice"));
        };
        seed.deserialize(KeyDeserializer {
            inner: deserializer,
            parent: self.parent,
            layered: self.layered,
            name: self.name,
        })
    }
}

struct KeyDeserializer<'k, D> {
    inner: D,
    parent: &'k str,
    layered: &'k Layered<'k>,
    name: &'k mut Option<String>,
}

impl<'k, D> KeyDeserializer<'k, D> {
    fn wrap<V>(self, visitor: V) -> (D, KeyVisitor<'k, V>) {
        let visitor = KeyVisitor {
            visitor,
            parent: self.parent,
            layered: self.layered,
            name: self.name,
        };
        (self.inner, visitor)
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for KeyDeserializer<'_, D> {
    type Error = D::Error;

    forward_deserialize! { wrap:
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf();
        deserialize_option(); deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str); deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize); deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

struct KeyVisitor<'k, V> {
    visitor: V,
    parent: &'k str,
    layered: &'k Layered<'k>,
    name: &'k mut Option<String>,
}

impl<V> KeyVisitor<'_, V> {
    /// The key's current name, noted.
    fn rename(self, key: &str) -> (V, String) {
        let name = self.layered.current_name(self.parent, key).to_owned();
        *self.name = Some(name.clone());
        (self.visitor, name)
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for KeyVisitor<'_, V> {
    type Value = V::Value;

    forward_visit_common!();

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        let (visitor, name) = self.rename(v);
        visitor.visit_str(&name)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        let (visitor, name) = self.rename(v);
        if name == v {
            visitor.visit_borrowed_str(v)
        } else {
            visitor.visit_string(name)
        }
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        let (visitor, name) = self.rename(&v);
        visitor.visit_string(name)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_some(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.visitor.visit_newtype_struct(deserializer)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(map)
    }
}
