//! Prometheus text exposition, format 0.0.4.

use std::fmt::Write as _;

use crate::snapshot::{FamilySnapshot, SeriesValue};

/// Renders families in the Prometheus text format 0.0.4, in the order given
/// ([`Registry::snapshot`](crate::Registry::snapshot) sorts them by name and their series by label
/// values).
///
/// Each family is a `# HELP` line (help text with `\` and newline escaped), a `# TYPE` line and one
/// line per series (histograms: cumulative `_bucket` lines ending with `le="+Inf"`, then `_sum` and
/// `_count`). Label values have `\`, `"` and newline escaped. Families without any series are left
/// out. Floats are written as Prometheus parses them: `+Inf`, `-Inf`, `NaN`, integral values
/// without a fraction (`1`, not `1.0`), and exponent notation only below `1e-6` or from `1e21`.
pub fn render_prometheus(families: &[FamilySnapshot]) -> String {
    let mut out = String::new();
    for family in families.iter().filter(|family| !family.series.is_empty()) {
        let name = &family.name;
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape_into(&mut out, &family.help, false);
        out.push_str("\n# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(family.kind.as_str());
        out.push('\n');

        for series in &family.series {
            let labels = Labels {
                names: &family.label_names,
                values: &series.label_values,
            };
            match &series.value {
                SeriesValue::Counter(count) => {
                    write_sample_start(&mut out, name, "", &labels, None);
                    let _ = writeln!(out, "{count}");
                }
                SeriesValue::Gauge(value) => {
                    write_sample_start(&mut out, name, "", &labels, None);
                    write_float(&mut out, *value);
                    out.push('\n');
                }
                SeriesValue::Histogram(histogram) => {
                    let mut bound = String::new();
                    for bucket in &histogram.buckets {
                        bound.clear();
                        write_float(&mut bound, bucket.upper_bound);
                        write_sample_start(&mut out, name, "_bucket", &labels, Some(&bound));
                        let _ = writeln!(out, "{}", bucket.cumulative_count);
                    }
                    write_sample_start(&mut out, name, "_bucket", &labels, Some("+Inf"));
                    let _ = writeln!(out, "{}", histogram.count);
                    write_sample_start(&mut out, name, "_sum", &labels, None);
                    write_float(&mut out, histogram.sum);
                    out.push('\n');
                    write_sample_start(&mut out, name, "_count", &labels, None);
                    let _ = writeln!(out, "{}", histogram.count);
                }
            }
        }
    }
    out
}

struct Labels<'a> {
    names: &'a [String],
    values: &'a [String],
}

/// Writes `name` `suffix` `{labels}` and the space before the value. `le` is a histogram bucket's
/// already formatted bound, appended as the last label.
fn write_sample_start(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &Labels<'_>,
    le: Option<&str>,
) {
    out.push_str(name);
    out.push_str(suffix);
    let mut pairs = labels
        .names
        .iter()
        .enumerate()
        .map(|(index, label)| {
            (
                label.as_str(),
                labels.values.get(index).map_or("", String::as_str),
            )
        })
        .chain(le.map(|le| ("le", le)))
        .peekable();
    if pairs.peek().is_some() {
        out.push('{');
        for (index, (label, value)) in pairs.enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_into(out, value, true);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
}

/// Escapes `\` and newline (help text), and also `"` (label values).
fn escape_into(out: &mut String, text: &str, quote: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn write_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        // `{}` is the shortest text that parses back to the same value, never in exponent form;
        // switch to exponent form at the extremes to keep lines short.
        let magnitude = value.abs();
        if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
            let _ = write!(out, "{value:e}");
        } else {
            let _ = write!(out, "{value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(value: f64) -> String {
        let mut out = String::new();
        write_float(&mut out, value);
        out
    }

    #[test]
    fn floats_are_written_as_prometheus_parses_them() {
        assert_eq!(float(0.0), "0");
        assert_eq!(float(1.0), "1");
        assert_eq!(float(-1.0), "-1");
        assert_eq!(float(0.005), "0.005");
        assert_eq!(float(2.5), "2.5");
        assert_eq!(float(1234567.0), "1234567");
        assert_eq!(float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(float(1e21), "1e21");
        assert_eq!(float(-2.5e-7), "-2.5e-7");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
    }

    #[test]
    fn every_written_float_parses_back_to_the_same_value() {
        for value in [
            0.0,
            1.0,
            0.005,
            1e-300,
            123.456,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            -7.25,
        ] {
            assert_eq!(float(value).parse::<f64>().ok(), Some(value), "{value}");
        }
    }

    #[test]
    fn help_escapes_backslash_and_newline_but_not_quotes() {
        let mut out = String::new();
        escape_into(&mut out, "a \\ b\n\"c\"", false);
        assert_eq!(out, "a \\\\ b\\n\"c\"");
    }
}
