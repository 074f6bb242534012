//! A Go `text/tabwriter` equivalent for docker's tables.

/// Align tab-separated cells like `tabwriter.NewWriter(w, minwidth, 1, padding, ' ', 0)`.
/// Text after the last tab of a line is not part of a column.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text
        .split_inclusive('\n')
        .map(|l| l.strip_suffix('\n').unwrap_or(l).split('\t').collect())
        .collect();
    let ends_nl: Vec<bool> = text
        .split_inclusive('\n')
        .map(|l| l.ends_with('\n'))
        .collect();
    let ncols = lines.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    // Column blocks: consecutive lines holding a tab-terminated cell in that column.
    let mut out_widths: Vec<Vec<usize>> = lines.iter().map(|c| vec![0; c.len()]).collect();
    for (col, w) in widths.iter_mut().enumerate() {
        let mut start = 0;
        while start < lines.len() {
            if lines[start].len() <= col + 1 {
                start += 1;
                continue;
            }
            let mut end = start;
            let mut width = minwidth;
            while end < lines.len() && lines[end].len() > col + 1 {
                width = width.max(lines[end][col].chars().count() + padding);
                end += 1;
            }
            for ow in out_widths.iter_mut().take(end).skip(start) {
                ow[col] = width;
            }
            *w = width;
            start = end;
        }
    }
    let mut out = String::with_capacity(text.len() * 2);
    for (i, cells) in lines.iter().enumerate() {
        for (j, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < cells.len() {
                let n = cell.chars().count();
                out.extend(std::iter::repeat_n(' ', out_widths[i][j].saturating_sub(n)));
            }
        }
        if ends_nl[i] {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_ps_header() {
        let t = "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n\
                 317ddf3d8582\tbusybox\t\"nosuch\"\tLess than a second ago\tCreated\t\tquirky_borg\n";
        let out = tabwrite(t, 10, 3);
        assert_eq!(
            out,
            "CONTAINER ID   IMAGE     COMMAND    CREATED                  STATUS    PORTS     NAMES\n\
             317ddf3d8582   busybox   \"nosuch\"   Less than a second ago   Created             quirky_borg\n"
        );
    }

    #[test]
    fn no_tabs() {
        assert_eq!(tabwrite("a\nb\n", 10, 3), "a\nb\n");
    }
}
