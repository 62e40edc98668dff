//! Lenient, order-keeping Extended JSON → BSON, for mongod's log lines.
//!
//! The `bson` crate's own conversions are strict: one value it rejects fails
//! the whole line, and mongod writes some it rejects (`"subType":"0"`, one
//! hex digit, in every `$clusterTime` signature). Here every JSON object is
//! read in order; an object whose first key is an Extended JSON wrapper
//! (`$oid`, `$date`, `$numberLong`, `$numberInt`, `$numberDouble`,
//! `$numberDecimal`, `$timestamp`, `$binary`, `$uuid`, `$regularExpression`,
//! `$symbol`, `$code`, `$minKey`, `$maxKey`, `$undefined`; relaxed or
//! canonical) becomes that BSON value, and stays a plain document when its
//! content does not convert. Integers that fit in 32 bits are `Int32`,
//! others `Int64` (as the Extended JSON spec reads a plain number); numbers
//! beyond `i64` are doubles.

use std::fmt;

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Decimal128, Document, Regex, Timestamp, oid::ObjectId};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Parses one JSON object.
pub(super) fn parse_document(text: &str) -> Result<Document, String> {
    let Lenient(value) = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match value {
        Bson::Document(doc) => Ok(doc),
        other => Err(format!(
            "a JSON object was expected, not {:?}",
            other.element_type()
        )),
    }
}

struct Lenient(Bson);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor)
    }
}

struct LenientVisitor;

fn int(n: i64) -> Bson {
    i32::try_from(n).map_or(Bson::Int64(n), Bson::Int32)
}

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Lenient;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Lenient, E> {
        Ok(Lenient(Bson::Boolean(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Lenient, E> {
        Ok(Lenient(int(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Lenient, E> {
        Ok(Lenient(
            i64::try_from(v).map_or(Bson::Double(v as f64), int),
        ))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Lenient, E> {
        Ok(Lenient(Bson::Double(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Lenient, E> {
        Ok(Lenient(Bson::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Lenient, E> {
        Ok(Lenient(Bson::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Lenient, E> {
        Ok(Lenient(Bson::Null))
    }

    fn visit_none<E>(self) -> Result<Lenient, E> {
        Ok(Lenient(Bson::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient, A::Error> {
        let mut items = Vec::new();
        while let Some(Lenient(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Lenient(Bson::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient, A::Error> {
        let mut doc = Document::new();
        while let Some((key, Lenient(value))) = map.next_entry::<String, Lenient>()? {
            doc.insert(key, value);
        }
        Ok(Lenient(wrapper(doc)))
    }
}

/// The BSON value an Extended JSON wrapper stands for, or the document.
fn wrapper(doc: Document) -> Bson {
    let converted = match doc.iter().next() {
        Some((key, value)) if key.starts_with('$') => convert(key, value, &doc),
        _ => None,
    };
    converted.unwrap_or(Bson::Document(doc))
}

fn convert(key: &str, value: &Bson, doc: &Document) -> Option<Bson> {
    let single = doc.len() == 1;
    let text = match value {
        Bson::String(s) => Some(s.as_str()),
        _ => None,
    };
    Some(match key {
        "$oid" if single => Bson::ObjectId(ObjectId::parse_str(text?).ok()?),
        "$date" if single => Bson::DateTime(match value {
            Bson::String(s) => DateTime::parse_rfc3339_str(s).ok()?,
            Bson::Int32(n) => DateTime::from_millis(i64::from(*n)),
            Bson::Int64(n) => DateTime::from_millis(*n),
            Bson::Double(d) if d.is_finite() => DateTime::from_millis(*d as i64),
            _ => return None,
        }),
        "$numberLong" if single => Bson::Int64(text?.parse().ok()?),
        "$numberInt" if single => Bson::Int32(text?.parse().ok()?),
        "$numberDouble" if single => Bson::Double(match text? {
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            other => other.parse().ok()?,
        }),
        "$numberDecimal" if single => Bson::Decimal128(text?.parse::<Decimal128>().ok()?),
        "$timestamp" if single => {
            let Bson::Document(ts) = value else {
                return None;
            };
            let part = |k: &str| match ts.get(k) {
                Some(Bson::Int32(n)) => u32::try_from(*n).ok(),
                Some(Bson::Int64(n)) => u32::try_from(*n).ok(),
                _ => None,
            };
            Bson::Timestamp(Timestamp {
                time: part("t")?,
                increment: part("i")?,
            })
        }
        "$binary" => {
            let (base64, subtype) = match (value, doc.get("$type")) {
                (Bson::Document(b), None) if single => {
                    (b.get_str("base64").ok()?, b.get_str("subType").ok()?)
                }
                (Bson::String(b), Some(Bson::String(t))) if doc.len() == 2 => {
                    (b.as_str(), t.as_str())
                }
                _ => return None,
            };
            let subtype = BinarySubtype::from(u8::from_str_radix(subtype, 16).ok()?);
            Bson::Binary(Binary::from_base64(base64, subtype).ok()?)
        }
        "$uuid" if single => Bson::Binary(Binary::from(bson::Uuid::parse_str(text?).ok()?)),
        "$regularExpression" if single => {
            let Bson::Document(re) = value else {
                return None;
            };
            Bson::RegularExpression(Regex {
                pattern: re.get_str("pattern").ok()?.to_owned(),
                options: re.get_str("options").ok()?.to_owned(),
            })
        }
        "$symbol" if single => Bson::Symbol(text?.to_owned()),
        "$code" if single => Bson::JavaScriptCode(text?.to_owned()),
        "$minKey" if single => Bson::MinKey,
        "$maxKey" if single => Bson::MaxKey,
        "$undefined" if single => Bson::Undefined,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn wrappers_become_bson_values() {
        let doc = parse_document(
            r#"{"z":1,"a":{"$oid":"64b7f0c2a1b2c3d4e5f60718"},"d1":{"$date":"2026-11-20T10:00:01.123+01:00"},
                "d2":{"$date":{"$numberLong":"1000"}},"l":{"$numberLong":"5"},"i":{"$numberInt":"7"},
                "f":{"$numberDouble":"-Infinity"},"dec":{"$numberDecimal":"1.5"},
                "ts":{"$timestamp":{"t":10,"i":2}},
                "bin":{"$binary":{"base64":"AAE=","subType":"0"}},
                "bin2":{"$binary":"AAE=","$type":"80"},
                "u":{"$uuid":"5f3d6c1e-8a2b-4c7d-9e0f-1a2b3c4d5e6f"},
                "re":{"$regularExpression":{"pattern":"^a","options":"i"}},
                "big":18446744073709551615,"neg":-3,"long":-3000000000,"x":1.5,"n":null,"b":[true,"s"]}"#,
        )
        .unwrap();
        let keys: Vec<&String> = doc.keys().collect();
        assert_eq!(keys[..3], ["z", "a", "d1"]);
        assert_eq!(
            doc.get("a"),
            Some(&Bson::ObjectId(
                ObjectId::parse_str("64b7f0c2a1b2c3d4e5f60718").unwrap()
            ))
        );
        assert_eq!(
            doc.get("d1"),
            Some(&Bson::DateTime(
                DateTime::parse_rfc3339_str("2026-11-20T09:00:01.123Z").unwrap()
            ))
        );
        assert_eq!(
            doc.get("d2"),
            Some(&Bson::DateTime(DateTime::from_millis(1000)))
        );
        assert_eq!(doc.get("l"), Some(&Bson::Int64(5)));
        assert_eq!(doc.get("i"), Some(&Bson::Int32(7)));
        assert_eq!(doc.get("f"), Some(&Bson::Double(f64::NEG_INFINITY)));
        assert!(matches!(doc.get("dec"), Some(Bson::Decimal128(_))));
        assert_eq!(
            doc.get("ts"),
            Some(&Bson::Timestamp(Timestamp {
                time: 10,
                increment: 2
            }))
        );
        let bin = Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![0, 1],
        });
        assert_eq!(doc.get("bin"), Some(&bin));
        assert!(
            matches!(doc.get("bin2"), Some(Bson::Binary(b)) if b.subtype == BinarySubtype::UserDefined(0x80))
        );
        assert!(
            matches!(doc.get("u"), Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Uuid && b.bytes.len() == 16)
        );
        assert!(
            matches!(doc.get("re"), Some(Bson::RegularExpression(r)) if r.pattern == "^a" && r.options == "i")
        );
        assert_eq!(
            doc.get("big"),
            Some(&Bson::Double(18_446_744_073_709_551_615.0))
        );
        assert_eq!(doc.get("neg"), Some(&Bson::Int32(-3)));
        assert_eq!(doc.get("long"), Some(&Bson::Int64(-3_000_000_000)));
        assert_eq!(doc.get("n"), Some(&Bson::Null));
        assert_eq!(doc.get_array("b").unwrap().len(), 2);
    }

    #[test]
    fn bad_wrappers_and_query_operators_stay_documents() {
        let doc = parse_document(
            r#"{"a":{"$oid":"zz"},"b":{"$date":"yesterday"},"c":{"$regex":"^a","$options":"i"},"d":{"$gt":{"$numberLong":"1"}},"e":{"$oid":"64b7f0c2a1b2c3d4e5f60718","x":1}}"#,
        )
        .unwrap();
        assert_eq!(doc.get_document("a").unwrap(), &doc! { "$oid": "zz" });
        assert_eq!(
            doc.get_document("b").unwrap(),
            &doc! { "$date": "yesterday" }
        );
        assert_eq!(
            doc.get_document("c").unwrap(),
            &doc! { "$regex": "^a", "$options": "i" }
        );
        assert_eq!(doc.get_document("d").unwrap(), &doc! { "$gt": 1i64 });
        assert!(doc.get_document("e").is_ok());
    }

    #[test]
    fn not_an_object_or_not_json() {
        assert!(parse_document("[1]").is_err());
        assert!(parse_document("{\"a\":").is_err());
        assert!(parse_document("nope").is_err());
    }
}
