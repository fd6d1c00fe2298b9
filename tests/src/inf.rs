//! A small INF parser: enough of the format to check a driver's INF.
//!
//! Supported: `[section]` headers (case-insensitive names; a section that
//! appears twice is merged, as Setup does), `key = value` lines and plain
//! entries, `;` comments outside double quotes, comma-separated fields with
//! quoted strings, and `%token%` substitution from `[Strings]` (`%%` is a
//! literal percent sign, a numeric token such as `%13%` is a DIRID).
//! Not supported, because usercap's INF does not use them: line
//! continuation (`\` at the end of a line) and localized `[Strings.xxxx]`
//! sections.

use core::fmt;

/// A parsed INF file.
#[derive(Clone, Debug, Default)]
pub struct Inf {
    /// The sections, in order of first appearance.
    pub sections: Vec<Section>,
}

/// One section, with its lines (comments and blank lines removed).
#[derive(Clone, Debug)]
pub struct Section {
    /// The name between the brackets, as written.
    pub name: String,
    /// Its non-empty lines.
    pub lines: Vec<Line>,
}

/// One line of a section, comment removed and trimmed.
#[derive(Clone, Debug)]
pub struct Line {
    /// 1-based line number in the file.
    pub number: usize,
    /// The whole line (without its comment).
    pub raw: String,
    /// The key of a `key = value` line.
    pub key: Option<String>,
    /// The value of a `key = value` line, or the whole line for an entry.
    pub value: String,
}

/// A syntax error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

impl Line {
    /// The key of a `key = value` line, else the first field of the entry
    /// (a file name in a file-list section).
    #[must_use]
    pub fn key_or_entry(&self) -> String {
        match &self.key {
            Some(key) => key.clone(),
            None => fields(&self.raw).into_iter().next().unwrap_or_default(),
        }
    }
}

impl Section {
    /// The `key = value` lines.
    pub fn entries(&self) -> impl Iterator<Item = &Line> {
        self.lines.iter().filter(|l| l.key.is_some())
    }
}

/// Removes a `;` comment that is not inside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The byte index of the first `=` outside double quotes.
fn find_equals(line: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '=' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Removes one pair of surrounding double quotes and un-doubles `""`.
fn unquote(field: &str) -> String {
    let trimmed = field.trim();
    match trimmed.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => trimmed.to_owned(),
    }
}

/// Splits a value into its comma-separated fields (commas inside double
/// quotes do not split), each trimmed and unquoted. An empty value has no
/// fields; `a,,b` has an empty middle field.
#[must_use]
pub fn fields(value: &str) -> Vec<String> {
    if value.trim().is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(unquote(&value[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(unquote(&value[start..]));
    out
}

impl Inf {
    /// Parses INF text (LF or CRLF line ends, an optional UTF-8 BOM).
    ///
    /// # Errors
    /// A section header without `]`, an empty section name, or a line
    /// outside any section.
    pub fn parse(text: &str) -> Result<Inf, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut inf = Inf::default();
        let mut current: Option<usize> = None;
        for (index, raw_line) in text.lines().enumerate() {
            let number = index + 1;
            let line = strip_comment(raw_line).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(ParseError {
                        line: number,
                        message: format!("unterminated section header {line:?}"),
                    });
                };
                let name = name.trim();
                if name.is_empty() {
                    return Err(ParseError {
                        line: number,
                        message: "empty section name".into(),
                    });
                }
                let existing = inf
                    .sections
                    .iter()
                    .position(|s| s.name.eq_ignore_ascii_case(name));
                current = Some(existing.unwrap_or_else(|| {
                    inf.sections.push(Section {
                        name: name.to_owned(),
                        lines: Vec::new(),
                    });
                    inf.sections.len() - 1
                }));
                continue;
            }
            let Some(section) = current.and_then(|i| inf.sections.get_mut(i)) else {
                return Err(ParseError {
                    line: number,
                    message: format!("line outside any section: {line:?}"),
                });
            };
            let (key, value) = match find_equals(line) {
                Some(at) => (
                    Some(line[..at].trim().to_owned()),
                    line[at + 1..].trim().to_owned(),
                ),
                None => (None, line.to_owned()),
            };
            section.lines.push(Line {
                number,
                raw: line.to_owned(),
                key,
                value,
            });
        }
        Ok(inf)
    }

    /// The section called `name` (case-insensitive).
    #[must_use]
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// Whether `[section]` has a line with this key (case-insensitive), even
    /// with an empty value.
    #[must_use]
    pub fn has_key(&self, section: &str, key: &str) -> bool {
        self.section(section).is_some_and(|s| {
            s.entries().any(|l| {
                l.key
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case(key))
            })
        })
    }

    /// The value of the first `key = value` line of `[section]`, unquoted if
    /// it is one quoted string; `None` if absent or empty.
    #[must_use]
    pub fn value(&self, section: &str, key: &str) -> Option<String> {
        let line = self.section(section)?.entries().find(|l| {
            l.key
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(key))
        })?;
        let value = unquote(&line.value);
        (!value.is_empty()).then_some(value)
    }

    /// The `[Strings]` value for `token` (case-insensitive), unquoted.
    #[must_use]
    pub fn string(&self, token: &str) -> Option<String> {
        self.value("Strings", token)
    }

    /// `text` with every `%token%` replaced by its `[Strings]` value; numeric
    /// tokens (DIRIDs) and `%%` are kept as written.
    ///
    /// # Errors
    /// The first token with no `[Strings]` entry, or an unpaired `%`.
    pub fn expand(&self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('%') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else {
                return Err(format!("unpaired % in {text:?}"));
            };
            let token = &after[..end];
            if token.is_empty() || token.bytes().all(|b| b.is_ascii_digit()) {
                out.push('%');
                out.push_str(token);
                out.push('%');
            } else {
                out.push_str(&self.string(token).ok_or_else(|| token.to_owned())?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Every `%token%` outside `[Strings]` that does not resolve, in order.
    #[must_use]
    pub fn unresolved_tokens(&self) -> Vec<String> {
        self.sections
            .iter()
            .filter(|s| !s.name.eq_ignore_ascii_case("Strings"))
            .flat_map(|s| s.lines.iter())
            .filter_map(|l| self.expand(&l.raw).err())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "; header comment\r\n\
        [Version]\r\n\
        Signature = \"$WINDOWS NT$\" ; trailing comment\r\n\
        DriverVer = ; empty\r\n\
        [Files]\r\n\
        a.sys\r\n\
        [reg]\r\n\
        HKR,,Security,,\"D:P(A;;GA;;;SY)\"\r\n\
        [version]\r\n\
        Provider = %Who%\r\n\
        Path = %13%\\a.sys\r\n\
        [Strings]\r\n\
        Who = \"someone, somewhere\"\r\n";

    #[test]
    fn parses_sections_keys_entries_and_quoted_semicolons() {
        let inf = Inf::parse(SAMPLE).expect("parses");
        assert_eq!(inf.sections.len(), 4, "[version] merges into [Version]");
        assert_eq!(
            inf.value("VERSION", "signature").as_deref(),
            Some("$WINDOWS NT$")
        );
        assert!(inf.has_key("Version", "DriverVer"));
        assert_eq!(inf.value("Version", "DriverVer"), None);
        let files = inf.section("files").expect("files");
        assert_eq!(files.lines[0].key_or_entry(), "a.sys");
        let reg = &inf.section("reg").expect("reg").lines[0];
        assert_eq!(
            fields(&reg.raw),
            ["HKR", "", "Security", "", "D:P(A;;GA;;;SY)"]
        );
    }

    #[test]
    fn expands_strings_and_keeps_dirids() {
        let inf = Inf::parse(SAMPLE).expect("parses");
        assert_eq!(inf.expand("%who%!").as_deref(), Ok("someone, somewhere!"));
        assert_eq!(inf.expand("%13%\\a.sys").as_deref(), Ok("%13%\\a.sys"));
        assert_eq!(inf.expand("100%%").as_deref(), Ok("100%%"));
        assert_eq!(inf.expand("%nobody%"), Err("nobody".to_owned()));
        assert!(inf.expand("50% off").is_err());
        assert!(inf.unresolved_tokens().is_empty());
        let broken = SAMPLE.replace("Provider = %Who%", "Provider = %Whom%");
        let inf = Inf::parse(&broken).expect("parses");
        assert_eq!(inf.unresolved_tokens(), ["Whom"]);
    }

    #[test]
    fn rejects_broken_structure() {
        assert_eq!(Inf::parse("key = value\n").map(|_| ()).unwrap_err().line, 1);
        assert!(Inf::parse("[Version\n").is_err());
        assert!(Inf::parse("[ ]\n").is_err());
    }
}
