//! Which characters free text (names, descriptions, addresses) may hold. Control characters,
//! bidirectional overrides and isolates, and zero-width characters are invisible or reorder
//! what is around them: in a name, an address label or an admin screen they make text show
//! as something other than what it is (spoofed names, reversed amounts), so they are refused.

/// Whether free text may keep line breaks and tabs (a description) or is one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    SingleLine,
    /// `\n` and `\t` are allowed.
    MultiLine,
}

/// True when `text` has no control, bidirectional-formatting or zero-width character
/// (`\n` and `\t` allowed with [`Layout::MultiLine`]).
pub fn is_visible_text(text: &str, layout: Layout) -> bool {
    text.chars().all(|c| (layout == Layout::MultiLine && matches!(c, '\n' | '\t')) || !is_hidden(c))
}

/// Control characters (C0, DEL, C1), bidi marks, embeddings, overrides and isolates, and
/// zero-width and other invisible formatting characters.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'                  // Arabic letter mark
            | '\u{200B}'..='\u{200F}'   // zero-width space, non-joiner, joiner; LRM, RLM
            | '\u{2028}' | '\u{2029}'   // line and paragraph separators
            | '\u{202A}'..='\u{202E}'   // bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}'   // word joiner, invisible operators, bidi isolates
            | '\u{FEFF}' // zero-width no-break space (BOM)
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Layout::*;

    #[test]
    fn plain_text_of_any_script_is_visible() {
        for ok in ["Ada Lovelace", "Zoë Ωmega", "東京 1-2-3", "שלום", "مرحبا", "emoji 🎉", ""] {
            assert!(is_visible_text(ok, SingleLine), "{ok}");
        }
    }

    #[test]
    fn hidden_characters_are_refused() {
        let hidden = [
            '\u{0}', '\u{7}', '\u{1B}', '\u{7F}', '\u{85}', '\u{9F}', '\r', // controls
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', // embeddings, overrides
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', // isolates
            '\u{200E}', '\u{200F}', '\u{061C}', // marks
            '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', // zero-width
        ];
        for c in hidden {
            let text = format!("Ada{c}Lovelace");
            assert!(!is_visible_text(&text, SingleLine), "U+{:04X}", c as u32);
            assert!(!is_visible_text(&text, MultiLine), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn only_multi_line_text_keeps_newlines_and_tabs() {
        assert!(is_visible_text("line one\n\tline two", MultiLine));
        assert!(!is_visible_text("line one\nline two", SingleLine));
        assert!(!is_visible_text("a\tb", SingleLine));
    }
}
