//! Names that are path segments in the store (datasets, models): parsed, never trusted,
//! each kind with its own type and its own error, so a bad model name is reported as one.

/// Defines a name type (`$name`) and its parse error (`$error`): lower-case ASCII letters,
/// digits, `-` and `_`, 1 to 64 long, starting with a letter or digit; (de)serialised as a
/// string, checked on the way in. `$what` names the kind in the error.
macro_rules! path_segment_name {
    ($(#[$doc:meta])* $name:ident, $error:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        #[derive(Debug, thiserror::Error, PartialEq)]
        #[error(
            "invalid {} name {:?}: use 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit",
            $what,
            .0
        )]
        pub struct $error(pub String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, $error> {
                let s = s.into();
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    })
                    && s.as_bytes()[0].is_ascii_alphanumeric();
                if ok { Ok(Self(s)) } else { Err($error(s)) }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
    };
}

path_segment_name!(
    /// A dataset's name: lower-case ASCII letters, digits, `-` and `_`, 1 to 64 long,
    /// starting with a letter or digit. It is a path segment everywhere, so it is parsed,
    /// not trusted.
    DatasetName,
    InvalidDatasetName,
    "dataset"
);

path_segment_name!(
    /// A model's name: the same rules as a dataset's (it is a path segment too), and its
    /// own type, so the two are never mixed up and a bad one is reported as a model name.
    ModelName,
    InvalidModelName,
    "model"
);
