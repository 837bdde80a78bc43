//! Union variants that client generators can build. utoipa writes an
//! internally tagged enum's newtype variant (`SmsJob::Lookup(TemplateMessage)`)
//! as an inline `allOf` of the inner type's `$ref` and the tag; an inline
//! `allOf` that refers to another schema, inside a `oneOf` or `anyOf`, is
//! what openapi-python-client cannot build (it reads the union before the
//! schema the `$ref` names) and it drops the whole union, and with it every
//! schema and operation that uses it (`POST /v1/jobs`'s `SubmitSmsJob`).
//!
//! Each such variant of a component schema becomes a component of its own,
//! named after the union and the variant's tag (`SmsJobLookup`,
//! `SmsJobCall`), and the union refers to it: the same schema, by name.

use utoipa::openapi::schema::{AllOf, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::Modify;

pub struct NamedVariants;

impl Modify for NamedVariants {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let mut named = Vec::new();
        for (union, schema) in &mut components.schemas {
            let variants = match schema {
                RefOr::T(Schema::OneOf(one_of)) => &mut one_of.items,
                RefOr::T(Schema::AnyOf(any_of)) => &mut any_of.items,
                _ => continue,
            };
            for (index, variant) in variants.iter_mut().enumerate() {
                let RefOr::T(Schema::AllOf(all_of)) = variant else {
                    continue;
                };
                let suffix = tag_value(all_of).map_or_else(|| format!("Variant{index}"), |tag| pascal_case(&tag));
                let name = format!("{union}{suffix}");
                let schema = std::mem::replace(variant, RefOr::Ref(Ref::from_schema_name(name.as_str())));
                named.push((name, schema));
            }
        }
        for (name, schema) in named {
            assert!(!components.schemas.contains_key(&name), "a union's variant is named {name}, as another schema is");
            components.schemas.insert(name, schema);
        }
    }
}

/// The value of the variant's tag: the property of its own (inline) part
/// whose schema is an enum of one string.
fn tag_value(all_of: &AllOf) -> Option<String> {
    all_of.items.iter().find_map(|item| {
        let RefOr::T(Schema::Object(own)) = item else {
            return None;
        };
        own.properties.values().find_map(|property| match property {
            RefOr::T(Schema::Object(property)) => match property.enum_values.as_deref() {
                Some([serde_json::Value::String(tag)]) => Some(tag.clone()),
                _ => None,
            },
            _ => None,
        })
    })
}

/// `verbose_json` → `VerboseJson`.
fn pascal_case(tag: &str) -> String {
    tag.split(|c: char| !c.is_ascii_alphanumeric())
        .flat_map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_ascii_uppercase()).into_iter().chain(chars)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Type};
    use utoipa::openapi::{ComponentsBuilder, OpenApiBuilder};

    use super::*;

    fn tagged(tag: &str) -> ObjectBuilder {
        ObjectBuilder::new().property("mode", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([tag]))).required("mode")
    }

    #[test]
    fn an_inline_all_of_variant_becomes_a_named_schema_and_the_others_stay() {
        let union = OneOfBuilder::new()
            .item(tagged("send").property("message", ObjectBuilder::new().schema_type(Type::String)))
            .item(AllOfBuilder::new().item(Ref::from_schema_name("TemplateMessage")).item(tagged("verbose_lookup")))
            .item(AllOfBuilder::new().item(Ref::from_schema_name("TemplateMessage")).item(ObjectBuilder::new()));
        let components = ComponentsBuilder::new().schema("SmsJob", union).build();
        let mut doc = OpenApiBuilder::new().components(Some(components)).build();
        NamedVariants.modify(&mut doc);

        let doc = serde_json::to_value(&doc).unwrap();
        let schemas = &doc["components"]["schemas"];
        let variants = schemas["SmsJob"]["oneOf"].as_array().unwrap();
        assert_eq!(variants[0]["properties"]["mode"]["enum"][0], "send", "a plain object variant stays inline");
        assert_eq!(variants[1]["$ref"], "#/components/schemas/SmsJobVerboseLookup");
        assert_eq!(variants[2]["$ref"], "#/components/schemas/SmsJobVariant2", "no tag: named by position");
        assert_eq!(schemas["SmsJobVerboseLookup"]["allOf"][0]["$ref"], "#/components/schemas/TemplateMessage");
        assert_eq!(schemas["SmsJobVerboseLookup"]["allOf"][1]["properties"]["mode"]["enum"][0], "verbose_lookup");
    }
}
