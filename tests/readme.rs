//! The README's first example is the crate documentation's first example.

/// The first example of `text` fenced by `fence`, without rustdoc's hidden lines.
fn first_example(text: &str, line_prefix: &str, fence: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(|line| match line.strip_prefix(line_prefix) {
            Some(rest) if !line_prefix.is_empty() => rest.strip_prefix(' ').unwrap_or(rest),
            _ => line,
        })
        .collect();
    let start = lines
        .iter()
        .position(|line| *line == fence)
        .expect("an example");
    lines[start + 1..]
        .iter()
        .take_while(|line| !line.starts_with("```"))
        .filter(|line| **line != "#" && !line.starts_with("# "))
        .map(|line| line.to_string())
        .collect()
}

#[test]
fn the_readme_example_is_the_crate_docs_example() {
    let readme = include_str!("../README.md");
    let docs: String = include_str!("../src/lib.rs")
        .lines()
        .take_while(|line| line.starts_with("//!"))
        .map(|line| format!("{line}\n"))
        .collect();
    let from_readme = first_example(readme, "", "```rust");
    let from_docs = first_example(&docs, "//!", "```");
    assert!(from_readme.len() > 10, "{from_readme:?}");
    assert_eq!(from_readme, from_docs);
}
