use serde::{Deserialize, Serialize};

/// Every widget type the homepage knows how to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WidgetKind {
    News,
    Weather,
    Stocks,
    Social,
    Marketplace,
    GoodSites,
    QuickLinks,
}

impl WidgetKind {
    pub const ALL: [WidgetKind; 7] = [
        WidgetKind::News,
        WidgetKind::Weather,
        WidgetKind::Stocks,
        WidgetKind::Social,
        WidgetKind::Marketplace,
        WidgetKind::GoodSites,
        WidgetKind::QuickLinks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WidgetKind::News => "news",
            WidgetKind::Weather => "weather",
            WidgetKind::Stocks => "stocks",
            WidgetKind::Social => "social",
            WidgetKind::Marketplace => "marketplace",
            WidgetKind::GoodSites => "good_sites",
            WidgetKind::QuickLinks => "quick_links",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn title(self) -> &'static str {
        match self {
            WidgetKind::News => "News",
            WidgetKind::Weather => "Weather",
            WidgetKind::Stocks => "Markets",
            WidgetKind::Social => "Social",
            WidgetKind::Marketplace => "Marketplace",
            WidgetKind::GoodSites => "Good Sites",
            WidgetKind::QuickLinks => "Quick links",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    pub fn as_str(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    System,
    Light,
    Dark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Units {
    Metric,
    Imperial,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Widget {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: WidgetKind,
    pub column: u8,
    pub position: u16,
    pub size: Size,
    /// Widget-specific settings (feeds, city, symbols, ...): an object whose
    /// shape each widget's own issue defines; bounded in size here.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    pub columns: u8,
    pub widgets: Vec<Widget>,
}

impl Layout {
    /// Widgets grouped by column, each column in position order.
    pub fn columns(&self) -> Vec<Vec<&Widget>> {
        let mut cols: Vec<Vec<&Widget>> = vec![Vec::new(); usize::from(self.columns)];
        for w in &self.widgets {
            if let Some(col) = cols.get_mut(usize::from(w.column)) {
                col.push(w);
            }
        }
        for col in &mut cols {
            col.sort_by_key(|w| w.position);
        }
        cols
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub theme: Theme,
    pub units: Units,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preferences {
    pub schema_version: i32,
    pub layout: Layout,
    pub settings: Settings,
}

impl Default for Preferences {
    /// What a first-time visitor sees: news beside weather and markets.
    fn default() -> Self {
        let widget = |id: &str, kind, column, position, size| Widget {
            id: id.to_owned(),
            kind,
            column,
            position,
            size,
            settings: serde_json::Map::new(),
        };
        Preferences {
            schema_version: crate::SCHEMA_VERSION,
            layout: Layout {
                columns: 3,
                widgets: vec![
                    widget("news", WidgetKind::News, 0, 0, Size::Large),
                    widget("weather", WidgetKind::Weather, 1, 0, Size::Medium),
                    widget("stocks", WidgetKind::Stocks, 1, 1, Size::Small),
                    widget("good-sites", WidgetKind::GoodSites, 2, 0, Size::Medium),
                    widget("marketplace", WidgetKind::Marketplace, 2, 1, Size::Medium),
                ],
            },
            settings: Settings {
                theme: Theme::System,
                units: Units::Metric,
            },
        }
    }
}
