//! The colours a user may change (the `[colours]` table of the
//! configuration file). Everything else keeps the terminal's palette.

use ratatui::style::Color;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Lines that mention me.
    pub mention: Color,
    /// URLs.
    pub link: Color,
    /// The "new messages" line.
    pub marker: Color,
}

impl Default for Theme {
    fn default() -> Self {
        Theme {
            mention: Color::LightYellow,
            link: Color::LightBlue,
            marker: Color::LightRed,
        }
    }
}

/// Reads a colour: a name (`red`, `lightblue`, `darkgray`…), `#rrggbb`, or
/// an index 0-255.
pub fn parse_colour(s: &str) -> Result<Color, String> {
    s.trim()
        .parse::<Color>()
        .map_err(|_| format!("{s:?} is not a colour (a name like lightblue, #rrggbb, or 0-255)"))
}

/// How a colour is written back in `--print-config`.
pub fn colour_name(c: Color) -> String {
    c.to_string().to_lowercase()
}
