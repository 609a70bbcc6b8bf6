//! Where listings are and where searches look: the gazetteer (`geo_cities`,
//! GeoNames-derived, seeded by migration V21), coordinates and radii.

use serde::Serialize;
use village_platform::sql::{Row, Sql, SqlError, SqlValue};

/// Metres in a statute mile: distances are stored and computed in metres
/// (PostGIS `geography`), shown and asked for in miles.
pub const METRES_PER_MILE: f64 = 1609.344;

/// A validated WGS 84 coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

impl Point {
    pub fn new(lat: f64, lon: f64) -> Result<Self, &'static str> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err("latitude must be between -90 and 90");
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err("longitude must be between -180 and 180");
        }
        Ok(Point { lat, lon })
    }
}

/// A search radius: 1 to 250 miles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Radius(u16);

impl Radius {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 250;
    pub const DEFAULT: Radius = Radius(25);

    pub fn miles(self) -> u16 {
        self.0
    }

    pub fn metres(self) -> f64 {
        f64::from(self.0) * METRES_PER_MILE
    }
}

impl TryFrom<&str> for Radius {
    type Error = String;

    fn try_from(s: &str) -> Result<Self, String> {
        match s.trim().parse::<u16>() {
            Ok(m) if (Self::MIN..=Self::MAX).contains(&m) => Ok(Radius(m)),
            _ => Err(format!(
                "a whole number of miles from {} to {}",
                Self::MIN,
                Self::MAX
            )),
        }
    }
}

/// A place in the gazetteer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct City {
    pub id: i64,
    pub name: String,
    pub admin_code: String,
    pub admin_name: String,
    pub country: String,
    pub population: i32,
    pub lat: f64,
    pub lon: f64,
}

impl City {
    /// "Portland, OR": how forms show and accept a place.
    pub fn label(&self) -> String {
        format!("{}, {}", self.name, self.admin_code)
    }

    pub fn point(&self) -> Point {
        Point {
            lat: self.lat,
            lon: self.lon,
        }
    }
}

impl TryFrom<&Row> for City {
    type Error = SqlError;

    fn try_from(r: &Row) -> Result<Self, SqlError> {
        Ok(City {
            id: r.get("id")?,
            name: r.get("name")?,
            admin_code: r.get("admin_code")?,
            admin_name: r.get("admin_name")?,
            country: r.get("country")?,
            population: r.get("population")?,
            lat: r.get("lat")?,
            lon: r.get("lon")?,
        })
    }
}

/// The columns [`City`] reads (a macro, so statements stay literals).
macro_rules! city_columns {
    () => {
        "id, name, admin_code, admin_name, country, population, \
         ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon"
    };
}

/// The longest prefix a lookup takes.
pub const MAX_QUERY: usize = 100;

/// Escapes `LIKE`'s wildcards so a prefix matches literally.
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Places whose name starts with `prefix` (case-insensitive), most
/// populous first. "Portland, O" narrows by state code.
pub async fn lookup(sql: &impl Sql, prefix: &str, limit: i64) -> Result<Vec<City>, SqlError> {
    let (name, admin) = match prefix.split_once(',') {
        Some((n, a)) => (n.trim(), Some(a.trim().to_uppercase())),
        None => (prefix.trim(), None),
    };
    if name.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sql
        .query(
            concat!(
                "SELECT ",
                city_columns!(),
                " FROM geo_cities \
                 WHERE lower(name) LIKE $1 ESCAPE '\\' \
                   AND ($2::text IS NULL OR starts_with(admin_code, $2)) \
                 ORDER BY population DESC, id LIMIT $3"
            ),
            &[
                SqlValue::Text(like_prefix(name)),
                admin
                    .filter(|a| !a.is_empty())
                    .map_or(SqlValue::Null, SqlValue::Text),
                SqlValue::Int64(limit),
            ],
        )
        .await?;
    rows.iter().map(City::try_from).collect()
}

pub async fn by_id(sql: &impl Sql, id: i64) -> Result<Option<City>, SqlError> {
    sql.query_opt(
        concat!("SELECT ", city_columns!(), " FROM geo_cities WHERE id = $1"),
        &[SqlValue::Int64(id)],
    )
    .await?
    .as_ref()
    .map(City::try_from)
    .transpose()
}

/// What a place field resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    City(City),
    Point(Point),
}

impl Resolved {
    pub fn point(&self) -> Point {
        match self {
            Resolved::City(c) => c.point(),
            Resolved::Point(p) => *p,
        }
    }

    pub fn city_id(&self) -> Option<i64> {
        match self {
            Resolved::City(c) => Some(c.id),
            Resolved::Point(_) => None,
        }
    }

    pub fn label(&self) -> String {
        match self {
            Resolved::City(c) => c.label(),
            Resolved::Point(p) => format!("{:.4}, {:.4}", p.lat, p.lon),
        }
    }
}

/// Reads a place typed into a form: "lat, lon", or "Name, ST" (the state
/// code settles which of several same-named places), or a bare name when
/// only one place has it. The error says what to type instead.
pub async fn resolve_text(
    sql: &impl Sql,
    text: &str,
) -> Result<Result<Resolved, String>, SqlError> {
    let text = text.trim();
    if text.chars().count() > MAX_QUERY {
        return Ok(Err(format!("at most {MAX_QUERY} characters")));
    }
    if let Some((a, b)) = text.split_once(',')
        && let (Ok(lat), Ok(lon)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>())
    {
        return Ok(Point::new(lat, lon)
            .map(Resolved::Point)
            .map_err(str::to_owned));
    }
    let (name, admin) = match text.split_once(',') {
        Some((n, a)) => (n.trim(), Some(a.trim().to_uppercase())),
        None => (text, None),
    };
    let rows = sql
        .query(
            concat!(
                "SELECT ",
                city_columns!(),
                " FROM geo_cities \
                 WHERE lower(name) = lower($1) AND ($2::text IS NULL OR admin_code = $2) \
                 ORDER BY population DESC, id LIMIT 6"
            ),
            &[
                SqlValue::Text(name.to_owned()),
                admin.clone().map_or(SqlValue::Null, SqlValue::Text),
            ],
        )
        .await?;
    let cities = rows
        .iter()
        .map(City::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match cities.as_slice() {
        [] => Err(format!(
            "no place called “{name}”; type a US town as “Name, ST”, or “latitude, longitude”"
        )),
        [one] => Ok(Resolved::City(one.clone())),
        // "Name, ST" names one town; the gazetteer sometimes holds a
        // neighbourhood of the same name in the same state: the most
        // populous is the town people mean.
        [first, ..] if admin.is_some() => Ok(Resolved::City(first.clone())),
        many => Err(format!(
            "more than one place is called “{name}”: add the state, e.g. {}",
            many.iter()
                .take(3)
                .map(|c| format!("“{}”", c.label()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radii_are_whole_miles_from_one_to_two_hundred_fifty() {
        assert_eq!(Radius::try_from("250").map(Radius::miles), Ok(250));
        assert_eq!(Radius::try_from(" 1 ").map(Radius::miles), Ok(1));
        for bad in ["0", "251", "-5", "ten", "2.5", ""] {
            assert!(Radius::try_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn coordinates_outside_the_globe_are_refused() {
        assert!(Point::new(45.5, -122.6).is_ok());
        assert!(Point::new(91.0, 0.0).is_err());
        assert!(Point::new(0.0, -180.5).is_err());
        assert!(Point::new(f64::NAN, 0.0).is_err());
    }

    #[test]
    fn like_wildcards_in_a_prefix_match_literally() {
        assert_eq!(like_prefix("Port"), "port%");
        assert_eq!(like_prefix("50%_off\\"), "50\\%\\_off\\\\%");
    }
}
