//! The [`Event`] model: context attributes, extensions and data, always valid.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::{Data, Error, ExtensionValue, Rule, SpecVersion, Timestamp, validate};

/// A CloudEvent (v0.3 or v1.0): context attributes, extension attributes and optional data.
///
/// An `Event` is valid by construction: the [builder](Event::builder), the setters and every
/// decoder check each attribute against the specification, so code holding an `Event` never
/// has to re-check it.
///
/// `dataschema` is the 1.0 name; on a 0.3 event the same attribute is `schemaurl` and is a
/// URI-reference rather than an absolute URI. 0.3's `datacontentencoding` is not stored: it is
/// `base64` exactly when the data is [`Data::Binary`] (see [`Event::datacontentencoding`]).
///
/// ```
/// use switchyard_cloudevents::{Event, SpecVersion};
///
/// let event = Event::builder()
///     .ty("com.example.sampletype1")
///     .source("https://example.com/event-producer")
///     .json_data(&serde_json::json!({"message": "Hello World!"}))
///     .build()?;
/// assert_eq!(event.specversion(), SpecVersion::V1_0);
/// assert_eq!(event.id().len(), 36); // a generated UUID
/// assert_eq!(event.ty(), "com.example.sampletype1");
/// # Ok::<(), switchyard_cloudevents::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub(crate) specversion: SpecVersion,
    pub(crate) id: String,
    pub(crate) source: String,
    pub(crate) ty: String,
    pub(crate) datacontenttype: Option<String>,
    pub(crate) dataschema: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) time: Option<Timestamp>,
    pub(crate) extensions: BTreeMap<String, ExtensionValue>,
    pub(crate) data: Option<Data>,
}

impl Event {
    /// Starts building an event; see [`EventBuilder`].
    pub fn builder() -> EventBuilder {
        EventBuilder::default()
    }

    /// The `specversion` attribute.
    pub fn specversion(&self) -> SpecVersion {
        self.specversion
    }

    /// The `id` attribute.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `source` attribute (a URI-reference).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `type` attribute.
    pub fn ty(&self) -> &str {
        &self.ty
    }

    /// The `datacontenttype` attribute.
    pub fn datacontenttype(&self) -> Option<&str> {
        self.datacontenttype.as_deref()
    }

    /// The `dataschema` attribute (`schemaurl` on a 0.3 event).
    pub fn dataschema(&self) -> Option<&str> {
        self.dataschema.as_deref()
    }

    /// The `subject` attribute.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The `time` attribute.
    pub fn time(&self) -> Option<&Timestamp> {
        self.time.as_ref()
    }

    /// The 0.3 `datacontentencoding` attribute: `Some("base64")` on a 0.3 event with binary
    /// data, `None` otherwise (1.0 has no such attribute).
    pub fn datacontentencoding(&self) -> Option<&'static str> {
        match (self.specversion, &self.data) {
            (SpecVersion::V0_3, Some(Data::Binary(_))) => Some("base64"),
            _ => None,
        }
    }

    /// One extension attribute by name.
    pub fn extension(&self, name: &str) -> Option<&ExtensionValue> {
        self.extensions.get(name)
    }

    /// All extension attributes, in name order.
    pub fn extensions(&self) -> impl ExactSizeIterator<Item = (&str, &ExtensionValue)> {
        self.extensions.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The data, if any.
    pub fn data(&self) -> Option<&Data> {
        self.data.as_ref()
    }

    /// Takes the data out of the event, leaving none.
    pub fn take_data(&mut self) -> Option<Data> {
        self.data.take()
    }

    /// Any attribute by name, in its canonical string form, like the Python SDK's
    /// `event["name"]`: context attributes of the event's version, then extensions.
    ///
    /// ```
    /// # use switchyard_cloudevents::Event;
    /// let event = Event::builder().id("1").ty("t").source("/s").extension("n", 5).build()?;
    /// assert_eq!(event.attribute("specversion").as_deref(), Some("1.0"));
    /// assert_eq!(event.attribute("n").as_deref(), Some("5"));
    /// assert_eq!(event.attribute("subject"), None);
    /// # Ok::<(), switchyard_cloudevents::Error>(())
    /// ```
    pub fn attribute(&self, name: &str) -> Option<Cow<'_, str>> {
        let borrowed = match (name, self.specversion) {
            ("specversion", _) => Some(self.specversion.as_str()),
            ("id", _) => Some(self.id.as_str()),
            ("source", _) => Some(self.source.as_str()),
            ("type", _) => Some(self.ty.as_str()),
            ("datacontenttype", _) => self.datacontenttype.as_deref(),
            ("dataschema", SpecVersion::V1_0) | ("schemaurl", SpecVersion::V0_3) => {
                self.dataschema.as_deref()
            }
            ("datacontentencoding", SpecVersion::V0_3) => self.datacontentencoding(),
            ("subject", _) => self.subject.as_deref(),
            ("time", _) => self.time.as_ref().map(Timestamp::as_str),
            _ => {
                return self.extensions.get(name).map(|value| match value.as_str() {
                    Some(text) => Cow::Borrowed(text),
                    None => Cow::Owned(value.to_canonical_string()),
                });
            }
        };
        borrowed.map(Cow::Borrowed)
    }

    /// Sets `id` (non-empty).
    pub fn set_id(&mut self, id: impl Into<String>) -> Result<(), Error> {
        let id = id.into();
        validate::non_empty("id", &id)?;
        self.id = id;
        Ok(())
    }

    /// Sets `source` (a non-empty URI-reference).
    pub fn set_source(&mut self, source: impl Into<String>) -> Result<(), Error> {
        let source = source.into();
        validate::uri_reference("source", &source)?;
        self.source = source;
        Ok(())
    }

    /// Sets `type` (non-empty).
    pub fn set_ty(&mut self, ty: impl Into<String>) -> Result<(), Error> {
        let ty = ty.into();
        validate::non_empty("type", &ty)?;
        self.ty = ty;
        Ok(())
    }

    /// Sets or clears `datacontenttype` (an RFC 2046 media type).
    pub fn set_datacontenttype(&mut self, value: Option<impl Into<String>>) -> Result<(), Error> {
        let value = value.map(Into::into);
        if let Some(value) = &value {
            validate::media_type("datacontenttype", value)?;
        }
        self.datacontenttype = value;
        Ok(())
    }

    /// Sets or clears `dataschema` (1.0: absolute URI; 0.3 `schemaurl`: URI-reference).
    pub fn set_dataschema(&mut self, value: Option<impl Into<String>>) -> Result<(), Error> {
        let value = value.map(Into::into);
        if let Some(value) = &value {
            check_dataschema(self.specversion, value)?;
        }
        self.dataschema = value;
        Ok(())
    }

    /// Sets or clears `subject` (non-empty).
    pub fn set_subject(&mut self, value: Option<impl Into<String>>) -> Result<(), Error> {
        let value = value.map(Into::into);
        if let Some(value) = &value {
            validate::non_empty("subject", value)?;
        }
        self.subject = value;
        Ok(())
    }

    /// Sets or clears `time`.
    pub fn set_time(&mut self, value: Option<impl Into<Timestamp>>) {
        self.time = value.map(Into::into);
    }

    /// Sets an extension attribute, returning the previous value.
    ///
    /// The name must use only `a`–`z` and `0`–`9` and must not be a context attribute of the
    /// event's version (nor `data`); `Map` values exist only in 0.3.
    pub fn set_extension(
        &mut self,
        name: impl Into<String>,
        value: impl Into<ExtensionValue>,
    ) -> Result<Option<ExtensionValue>, Error> {
        let name = name.into();
        let value = value.into();
        check_extension(self.specversion, &name, &value)?;
        Ok(self.extensions.insert(name, value))
    }

    /// Removes an extension attribute, returning it.
    pub fn remove_extension(&mut self, name: &str) -> Option<ExtensionValue> {
        self.extensions.remove(name)
    }

    /// Sets or clears the data. The content type is a separate attribute
    /// ([`Event::set_datacontenttype`]).
    pub fn set_data(&mut self, data: Option<Data>) {
        self.data = data;
    }

    /// Converts the event to another spec version, losslessly where the specification allows.
    ///
    /// 0.3 → 1.0 fails when `schemaurl` is a relative reference (1.0 `dataschema` is an absolute
    /// URI), when an extension is Map-typed (1.0 has no Map) or when an extension is named like
    /// a 1.0 context attribute; 1.0 → 0.3 fails when an extension is named like a 0.3 context
    /// attribute. Binary data moves between `data_base64` and `datacontentencoding` by itself.
    ///
    /// ```
    /// use switchyard_cloudevents::{Event, SpecVersion};
    ///
    /// let v1 = Event::builder().id("1").ty("t").source("/s")
    ///     .dataschema("https://example.com/schema").build()?;
    /// let v03 = v1.clone().into_version(SpecVersion::V0_3)?;
    /// assert_eq!(v03.attribute("schemaurl").as_deref(), Some("https://example.com/schema"));
    /// assert_eq!(v03.into_version(SpecVersion::V1_0)?, v1);
    /// # Ok::<(), switchyard_cloudevents::Error>(())
    /// ```
    pub fn into_version(mut self, target: SpecVersion) -> Result<Event, Error> {
        if self.specversion == target {
            return Ok(self);
        }
        if let Some(schema) = &self.dataschema
            && target == SpecVersion::V1_0
            && validate::absolute_uri("dataschema", schema).is_err()
        {
            return Err(Error::Conversion {
                name: "schemaurl".to_owned(),
                target: target.as_str(),
                reason: "1.0 `dataschema` must be an absolute URI and this is a relative reference",
            });
        }
        for (name, value) in &self.extensions {
            if target.is_context_attribute(name) {
                return Err(Error::Conversion {
                    name: name.clone(),
                    target: target.as_str(),
                    reason: "the extension's name is a context attribute in the target version",
                });
            }
            if target == SpecVersion::V1_0 && matches!(value, ExtensionValue::Map(_)) {
                return Err(Error::Conversion {
                    name: name.clone(),
                    target: target.as_str(),
                    reason: "1.0 has no Map type",
                });
            }
        }
        self.specversion = target;
        Ok(self)
    }
}

pub(crate) fn check_dataschema(version: SpecVersion, value: &str) -> Result<(), Error> {
    match version {
        SpecVersion::V1_0 => validate::absolute_uri("dataschema", value),
        SpecVersion::V0_3 => validate::uri_reference("schemaurl", value),
    }
}

pub(crate) fn check_extension_name(version: SpecVersion, name: &str) -> Result<(), Error> {
    if !validate::is_attribute_name(name) {
        return Err(Error::InvalidAttributeName {
            name: name.to_owned(),
        });
    }
    if name == "data" || version.is_context_attribute(name) {
        return Err(Error::ReservedAttributeName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

pub(crate) fn check_extension(
    version: SpecVersion,
    name: &str,
    value: &ExtensionValue,
) -> Result<(), Error> {
    check_extension_name(version, name)?;
    if version == SpecVersion::V1_0 && matches!(value, ExtensionValue::Map(_)) {
        return Err(Error::invalid(name, Rule::ExtensionType));
    }
    value.validate(name)
}

/// Context attributes as a decoder or the builder found them: strings, not yet checked.
///
/// [`UncheckedContext::check`] holds the specification's rules for them in one place; the
/// JSON decoder, the HTTP binary-mode decoder and [`EventBuilder::build`] all go through it.
pub(crate) struct UncheckedContext<'a> {
    pub(crate) id: Option<Cow<'a, str>>,
    pub(crate) source: Option<Cow<'a, str>>,
    pub(crate) ty: Option<Cow<'a, str>>,
    pub(crate) datacontenttype: Option<Cow<'a, str>>,
    pub(crate) dataschema: Option<Cow<'a, str>>,
    pub(crate) subject: Option<Cow<'a, str>>,
    pub(crate) time: Option<Cow<'a, str>>,
    /// Only meaningful in 0.3; a 1.0 decoder treats the name as an extension instead.
    pub(crate) datacontentencoding: Option<Cow<'a, str>>,
}

impl UncheckedContext<'_> {
    /// Checks every attribute for `version` and returns an event with no extensions and no
    /// data yet, plus whether 0.3 `datacontentencoding: base64` declared the data base64.
    pub(crate) fn check(self, version: SpecVersion) -> Result<(Event, bool), Error> {
        fn required<'a>(
            name: &'static str,
            value: Option<Cow<'a, str>>,
        ) -> Result<Cow<'a, str>, Error> {
            value.ok_or(Error::MissingAttribute { name })
        }
        let id = required("id", self.id)?;
        validate::non_empty("id", &id)?;
        let source = required("source", self.source)?;
        validate::uri_reference("source", &source)?;
        let ty = required("type", self.ty)?;
        validate::non_empty("type", &ty)?;
        if let Some(value) = &self.datacontenttype {
            validate::media_type("datacontenttype", value)?;
        }
        if let Some(value) = &self.dataschema {
            check_dataschema(version, value)?;
        }
        if let Some(value) = &self.subject {
            validate::non_empty("subject", value)?;
        }
        let time = match &self.time {
            Some(text) => Some(Timestamp::parse_for("time", text)?),
            None => None,
        };
        let base64_data = match (version, &self.datacontentencoding) {
            (SpecVersion::V0_3, Some(encoding)) if encoding.eq_ignore_ascii_case("base64") => true,
            (SpecVersion::V0_3, Some(_)) => {
                return Err(Error::invalid(
                    "datacontentencoding",
                    Rule::Base64EncodingOnly,
                ));
            }
            _ => false,
        };
        let event = Event {
            specversion: version,
            id: id.into_owned(),
            source: source.into_owned(),
            ty: ty.into_owned(),
            datacontenttype: self.datacontenttype.map(Cow::into_owned),
            dataschema: self.dataschema.map(Cow::into_owned),
            subject: self.subject.map(Cow::into_owned),
            time,
            extensions: BTreeMap::new(),
            data: None,
        };
        Ok((event, base64_data))
    }
}

/// Builds an [`Event`], checking every attribute when [`build`](EventBuilder::build) is called.
///
/// Like the Python SDK, `id` defaults to a fresh UUID (v4) and `specversion` to 1.0;
/// `source` and `type` are required.
///
/// ```
/// use switchyard_cloudevents::{Error, Event, SpecVersion};
///
/// let event = Event::builder()
///     .specversion(SpecVersion::V0_3)
///     .id("A234-1234-1234")
///     .ty("com.github.pull.create")
///     .source("https://github.com/cloudevents/spec/pull")
///     .subject("123")
///     .time("2018-04-05T17:31:00Z")
///     .datacontenttype("text/xml")
///     .data("<much wow=\"xml\"/>")
///     .extension("comexampleextension1", "value")
///     .build()?;
/// assert_eq!(event.subject(), Some("123"));
///
/// let missing = Event::builder().ty("t").build().unwrap_err();
/// assert!(matches!(missing, Error::MissingAttribute { name: "source" }));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct EventBuilder {
    specversion: SpecVersion,
    id: Option<String>,
    source: Option<String>,
    ty: Option<String>,
    datacontenttype: Option<String>,
    dataschema: Option<String>,
    subject: Option<String>,
    time: Option<Result<Timestamp, Error>>,
    extensions: Vec<(String, ExtensionValue)>,
    data: Option<Result<Data, Error>>,
}

impl EventBuilder {
    /// Sets `specversion` (default 1.0).
    pub fn specversion(mut self, version: SpecVersion) -> Self {
        self.specversion = version;
        self
    }

    /// Sets `id` (default: a random UUID).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets `source` (required).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sets `type` (required).
    pub fn ty(mut self, ty: impl Into<String>) -> Self {
        self.ty = Some(ty.into());
        self
    }

    /// Sets `datacontenttype`.
    pub fn datacontenttype(mut self, value: impl Into<String>) -> Self {
        self.datacontenttype = Some(value.into());
        self
    }

    /// Sets `dataschema` (0.3: `schemaurl`).
    pub fn dataschema(mut self, value: impl Into<String>) -> Self {
        self.dataschema = Some(value.into());
        self
    }

    /// Sets `subject`.
    pub fn subject(mut self, value: impl Into<String>) -> Self {
        self.subject = Some(value.into());
        self
    }

    /// Sets `time` from an RFC 3339 string, a [`Timestamp`] or a `chrono::DateTime`.
    pub fn time<T>(mut self, value: T) -> Self
    where
        T: TryInto<Timestamp>,
        T::Error: Into<Error>,
    {
        self.time = Some(value.try_into().map_err(Into::into));
        self
    }

    /// Adds an extension attribute.
    pub fn extension(mut self, name: impl Into<String>, value: impl Into<ExtensionValue>) -> Self {
        self.extensions.push((name.into(), value.into()));
        self
    }

    /// Sets the data.
    pub fn data(mut self, data: impl Into<Data>) -> Self {
        self.data = Some(Ok(data.into()));
        self
    }

    /// Sets JSON data from any serialisable value.
    pub fn json_data<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.data = Some(Data::json(value));
        self
    }

    /// Checks every attribute and builds the event.
    pub fn build(self) -> Result<Event, Error> {
        let version = self.specversion;
        let id = self.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let context = UncheckedContext {
            id: Some(Cow::Owned(id)),
            source: self.source.map(Cow::Owned),
            ty: self.ty.map(Cow::Owned),
            datacontenttype: self.datacontenttype.map(Cow::Owned),
            dataschema: self.dataschema.map(Cow::Owned),
            subject: self.subject.map(Cow::Owned),
            time: None,
            datacontentencoding: None,
        };
        let (mut event, _) = context.check(version)?;
        event.time = self.time.transpose()?;
        for (name, value) in self.extensions {
            check_extension(version, &name, &value)?;
            event.extensions.insert(name, value);
        }
        event.data = self.data.transpose()?;
        Ok(event)
    }
}

impl TryFrom<&str> for Timestamp {
    type Error = Error;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl TryFrom<String> for Timestamp {
    type Error = Error;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<std::convert::Infallible> for Error {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> EventBuilder {
        Event::builder().id("1").ty("t").source("/s")
    }

    #[test]
    fn builder_defaults_like_the_python_sdk() {
        let a = Event::builder().ty("t").source("/s").build().unwrap();
        let b = Event::builder().ty("t").source("/s").build().unwrap();
        assert_eq!(a.specversion(), SpecVersion::V1_0);
        assert!(uuid::Uuid::parse_str(a.id()).is_ok());
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn builder_names_the_attribute_and_rule() {
        let cases: Vec<(EventBuilder, &str, Rule)> = vec![
            (minimal().id(""), "id", Rule::NonEmpty),
            (minimal().source("not a uri"), "source", Rule::UriReference),
            (minimal().ty(""), "type", Rule::NonEmpty),
            (
                minimal().datacontenttype("xyz"),
                "datacontenttype",
                Rule::MediaType,
            ),
            (
                minimal().dataschema("/rel"),
                "dataschema",
                Rule::AbsoluteUri,
            ),
            (minimal().subject(""), "subject", Rule::NonEmpty),
            (minimal().time("lunchtime"), "time", Rule::Rfc3339),
        ];
        for (builder, name, rule) in cases {
            match builder.build() {
                Err(Error::InvalidAttribute { name: n, rule: r }) => {
                    assert_eq!((n.as_str(), r), (name, rule));
                }
                other => panic!("{name}: expected InvalidAttribute, got {other:?}"),
            }
        }
    }

    #[test]
    fn extension_names_follow_the_naming_rule() {
        assert!(matches!(
            minimal().extension("MyExtension", "x").build(),
            Err(Error::InvalidAttributeName { .. })
        ));
        assert!(matches!(
            minimal().extension("subject", "x").build(),
            Err(Error::ReservedAttributeName { .. })
        ));
        assert!(matches!(
            minimal().extension("data", "x").build(),
            Err(Error::ReservedAttributeName { .. })
        ));
        // `schemaurl` is only reserved in 0.3.
        assert!(minimal().extension("schemaurl", "x").build().is_ok());
        assert!(
            minimal()
                .specversion(SpecVersion::V0_3)
                .extension("schemaurl", "x")
                .build()
                .is_err()
        );
    }

    #[test]
    fn maps_exist_only_in_0_3() {
        let map = ExtensionValue::Map(BTreeMap::from([("k".into(), "v".into())]));
        assert!(minimal().extension("m", map.clone()).build().is_err());
        let v03 = minimal()
            .specversion(SpecVersion::V0_3)
            .extension("m", map)
            .build()
            .unwrap();
        let error = v03.into_version(SpecVersion::V1_0).unwrap_err();
        assert!(matches!(error, Error::Conversion { ref name, .. } if name == "m"));
    }

    #[test]
    fn relative_schemaurl_does_not_convert() {
        let v03 = minimal()
            .specversion(SpecVersion::V0_3)
            .dataschema("/schema")
            .build()
            .unwrap();
        assert!(v03.into_version(SpecVersion::V1_0).is_err());
    }

    #[test]
    fn datacontentencoding_follows_binary_data() {
        let v03 = minimal()
            .specversion(SpecVersion::V0_3)
            .data(vec![1u8, 2])
            .build()
            .unwrap();
        assert_eq!(v03.datacontentencoding(), Some("base64"));
        assert_eq!(
            v03.attribute("datacontentencoding").as_deref(),
            Some("base64")
        );
        let v1 = v03.into_version(SpecVersion::V1_0).unwrap();
        assert_eq!(v1.datacontentencoding(), None);
    }

    #[test]
    fn setters_validate() {
        let mut event = minimal().build().unwrap();
        assert!(event.set_source("").is_err());
        assert_eq!(event.source(), "/s");
        event.set_subject(Some("x")).unwrap();
        event.set_subject(None::<String>).unwrap();
        assert_eq!(event.subject(), None);
        assert_eq!(event.set_extension("n", 1).unwrap(), None);
        assert_eq!(
            event.set_extension("n", 2).unwrap(),
            Some(ExtensionValue::Integer(1))
        );
    }
}
