//! Floats in JSON files that tuna reads back (checkpoints above all), NaN and infinities
//! included. serde_json writes a non-finite `f64` as `null` and then refuses to read that `null`
//! as an `f64` ("invalid type: null, expected f64"), so one NaN in a saved curve made a whole
//! checkpoint unreadable. With these helpers a non-finite value is written as the string
//! `"NaN"`, `"inf"` or `"-inf"` and read back as the same value; finite values stay plain JSON
//! numbers. `null`, as files written before these helpers hold it, reads as NaN (for an
//! `Option<f64>`: as none).
//!
//! Use with serde's `with`: `#[serde(with = "tuna_core::float_json")]` on an `f64`,
//! `.. = "tuna_core::float_json::option"` on an `Option<f64>`,
//! `.. = "tuna_core::float_json::map"` on a `BTreeMap<String, f64>`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// One value as it is written: a finite number as itself, anything else as its name.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Num(f64),
    Name(String),
}

impl Repr {
    fn of(v: f64) -> Self {
        if v.is_finite() {
            Repr::Num(v)
        } else if v.is_nan() {
            Repr::Name("NaN".into())
        } else if v > 0.0 {
            Repr::Name("inf".into())
        } else {
            Repr::Name("-inf".into())
        }
    }

    fn value<E: serde::de::Error>(self) -> Result<f64, E> {
        match self {
            Repr::Num(v) => Ok(v),
            Repr::Name(s) => match s.as_str() {
                "NaN" | "nan" => Ok(f64::NAN),
                "inf" | "+inf" | "Infinity" => Ok(f64::INFINITY),
                "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(E::custom(format!(
                    "expected a number, \"NaN\", \"inf\" or \"-inf\", found \"{other}\""
                ))),
            },
        }
    }
}

/// Writes an `f64` (non-finite as its name).
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    Repr::of(*v).serialize(s)
}

/// Reads an `f64` written by [`serialize`] (`null` as NaN).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match Option::<Repr>::deserialize(d)? {
        Some(r) => r.value(),
        None => Ok(f64::NAN),
    }
}

/// `Option<f64>`: none as `null`, a non-finite value as its name.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        v.map(Repr::of).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<Repr>::deserialize(d)?.map(Repr::value).transpose()
    }
}

/// `BTreeMap<String, f64>`: each value as [`serialize`](super::serialize) writes it.
pub mod map {
    use super::*;

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let named: BTreeMap<&String, Repr> = m.iter().map(|(k, v)| (k, Repr::of(*v))).collect();
        named.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        BTreeMap::<String, Option<Repr>>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| Ok((k, v.map_or(Ok(f64::NAN), Repr::value)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Row {
        #[serde(with = "crate::float_json")]
        a: f64,
        #[serde(with = "crate::float_json::option", default)]
        b: Option<f64>,
        #[serde(with = "crate::float_json::map")]
        m: BTreeMap<String, f64>,
    }

    fn same(x: f64, y: f64) -> bool {
        x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
    }

    #[test]
    fn every_float_round_trips_exactly() {
        let values = [
            0.1,
            -2.5e-300,
            1.0 / 3.0,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for &v in &values {
            let row = Row {
                a: v,
                b: Some(v),
                m: BTreeMap::from([("k".to_string(), v)]),
            };
            let text = serde_json::to_string(&row).unwrap();
            let back: Row = serde_json::from_str(&text).unwrap();
            assert!(same(back.a, v) && same(back.b.unwrap(), v), "{v}: {text}");
            assert!(same(back.m["k"], v), "{v}: {text}");
        }
    }

    #[test]
    fn reads_the_nulls_and_integers_of_older_files() {
        let back: Row =
            serde_json::from_str(r#"{"a":null,"b":null,"m":{"k":null,"n":2}}"#).unwrap();
        assert!(back.a.is_nan() && back.b.is_none() && back.m["k"].is_nan());
        assert_eq!(back.m["n"], 2.0);
        let err = serde_json::from_str::<Row>(r#"{"a":"big","m":{}}"#).unwrap_err();
        assert!(err.to_string().contains("\"NaN\""), "{err}");
    }
}
