// A real diff, rendered by diff2html with syntax highlighting (highlight.js).
import { useEffect, useRef } from "preact/hooks";
import { createTwoFilesPatch } from "diff";
import { Diff2HtmlUI } from "diff2html/lib/ui/js/diff2html-ui-base";
import "diff2html/bundles/css/diff2html.min.css";
import { hljs } from "../highlight";

export function unifiedDiff(path: string, before: string, after: string): string {
  const rel = path.replace(/^\/+/, "");
  const a = before === "" ? "/dev/null" : `a/${rel}`;
  const patch = createTwoFilesPatch(a, `b/${rel}`, before, after, undefined, undefined, { context: 3 });
  // No header after the names: a trailing tab would end up in the file's extension.
  return patch.replace(/^((?:---|\+\+\+) .*?)\t$/gm, "$1");
}

export function Diff({ patch, sideBySide }: { patch: string; sideBySide?: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!ref.current) return;
    const ui = new Diff2HtmlUI(
      ref.current,
      patch,
      {
        drawFileList: false,
        matching: "lines",
        outputFormat: sideBySide ? "side-by-side" : "line-by-line",
        highlight: true,
        fileContentToggle: false,
        stickyFileHeaders: false,
        colorScheme: "auto" as any,
      },
      hljs as any,
    );
    try {
      ui.draw();
    } catch (e) {
      // Drawing without highlighting still shows the change.
      console.warn(e);
      new Diff2HtmlUI(ref.current, patch, { drawFileList: false, highlight: false }, hljs as any).draw();
    }
  }, [patch, sideBySide]);
  return <div class="diff" ref={ref} data-testid="diff" />;
}

export function EditDiff({ path, before, after }: { path: string; before: string; after: string }) {
  return <Diff patch={unifiedDiff(path, before, after)} />;
}
