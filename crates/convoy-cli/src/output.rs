//! Rendering results: tables by default, or JSON, YAML or bare values for scripts. The column
//! names are the JSON field names.

use clap::{Args, ValueEnum};
use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};
use comfy_table::{ContentLineStyle, LineStyle, TableStyle};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::failure::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
    /// Values only, separated by spaces, one row per line.
    Value,
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, short = 'f', global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Show only this column (repeatable); names as in --format json.
    #[arg(long = "column", short = 'c', global = true)]
    pub columns: Vec<String>,
}

impl OutputArgs {
    pub fn resolve(&self) -> Result<Output, Failure> {
        Ok(Output {
            format: self.format,
            columns: self.columns.clone(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Output {
    format: Format,
    columns: Vec<String>,
}

impl Output {
    /// A list of records. Tables show `default_columns` unless --column says otherwise; JSON
    /// and YAML show every field unless --column says otherwise.
    pub fn list<T: Serialize>(&self, items: &[T], default_columns: &[&str]) -> Result<(), Failure> {
        let rows: Vec<Map<String, Value>> =
            items.iter().map(to_object).collect::<Result<_, _>>()?;
        let all: Vec<String> = match rows.first() {
            Some(row) => row.keys().cloned().collect(),
            None => default_columns.iter().map(|c| c.to_string()).collect(),
        };
        let columns = self.columns_for(&all, Some(default_columns))?;
        let rows: Vec<Map<String, Value>> = rows.into_iter().map(|r| pick(r, &columns)).collect();
        match self.format {
            Format::Table => {
                let mut table = new_table();
                table.set_header(&columns);
                for row in &rows {
                    table.add_row(columns.iter().map(|c| cell(&row[c])));
                }
                emit(&format!("{table}\n"));
            }
            Format::Json => emit(&format!("{}\n", pretty_json(&rows)?)),
            Format::Yaml => emit(&yaml(&rows)?),
            Format::Value => {
                for row in &rows {
                    let values: Vec<String> = columns.iter().map(|c| cell(&row[c])).collect();
                    emit(&format!("{}\n", values.join(" ")));
                }
            }
        }
        Ok(())
    }

    /// One record: a Field/Value table, an object, or one value per line.
    pub fn one<T: Serialize>(&self, item: &T) -> Result<(), Failure> {
        let object = to_object(item)?;
        let all: Vec<String> = object.keys().cloned().collect();
        let columns = self.columns_for(&all, None)?;
        let object = pick(object, &columns);
        match self.format {
            Format::Table => {
                let mut table = new_table();
                table.set_header(["Field", "Value"]);
                for (key, value) in &object {
                    table.add_row([key.clone(), cell(value)]);
                }
                emit(&format!("{table}\n"));
            }
            Format::Json => emit(&format!("{}\n", pretty_json(&object)?)),
            Format::Yaml => emit(&yaml(&object)?),
            Format::Value => {
                for value in object.values() {
                    emit(&format!("{}\n", cell(value)));
                }
            }
        }
        Ok(())
    }

    pub fn is_table(&self) -> bool {
        self.format == Format::Table
    }

    /// A line for people (tables only; machine formats stay parseable).
    pub fn note(&self, text: &str) {
        if self.format == Format::Table {
            emit(&format!("{text}\n"));
        }
    }

    fn columns_for(
        &self,
        all: &[String],
        default: Option<&[&str]>,
    ) -> Result<Vec<String>, Failure> {
        if !self.columns.is_empty() {
            if let Some(unknown) = self.columns.iter().find(|c| !all.contains(c)) {
                return Err(Failure::bad_input(format!(
                    "--column: unknown column {unknown:?}; columns are {}",
                    all.join(", ")
                )));
            }
            return Ok(self.columns.clone());
        }
        Ok(match (self.format, default) {
            (Format::Table | Format::Value, Some(default)) => {
                default.iter().map(|c| c.to_string()).collect()
            }
            _ => all.to_vec(),
        })
    }
}

fn to_object<T: Serialize>(item: &T) -> Result<Map<String, Value>, Failure> {
    match serde_json::to_value(item) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Failure::failed(format!("cannot show {other} as a record"))),
        Err(e) => Err(Failure::failed(e.to_string())),
    }
}

fn pick(mut row: Map<String, Value>, columns: &[String]) -> Map<String, Value> {
    columns
        .iter()
        .map(|c| (c.clone(), row.remove(c).unwrap_or(Value::Null)))
        .collect()
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        // A hook's output ends with a newline; a table cell should not.
        Value::String(s) => s.trim_end_matches('\n').to_string(),
        other => other.to_string(),
    }
}

/// The tables of the OpenStack and StarlingX CLIs (cliff): `+---+` above and below the header.
const CLIFF_STYLE: TableStyle = presets::ASCII_FULL_CONDENSED
    .header_lines(ContentLineStyle::new('|', '|', '|'))
    .header_separator(LineStyle::new('+', '-', '+', '+'));

fn new_table() -> Table {
    let mut table = Table::new();
    table
        .load_style(CLIFF_STYLE)
        .set_content_arrangement(ContentArrangement::Disabled);
    table
}

fn pretty_json<T: Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(value).map_err(|e| Failure::failed(e.to_string()))
}

fn yaml<T: Serialize>(value: &T) -> Result<String, Failure> {
    serde_norway::to_string(value).map_err(|e| Failure::failed(e.to_string()))
}

/// Writes to stdout. A reader that went away (`convoy host list | head -1`) ends the program
/// quietly, as it would for any Unix tool.
pub fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(1);
    }
}
