import { dirname, join } from 'node:path';
import ts from 'typescript';

/** One fenced code block of a Markdown file. */
export interface Snippet {
  /** The fence's language tag (`ts`, `sh`, ...), `''` when it has none. */
  readonly lang: string;
  /** 1-based line of the first line of code (the line after the opening fence). */
  readonly line: number;
  readonly code: string;
}

/** Every fenced code block (``` or ~~~, three or more) of a Markdown document, in order. */
export function extractSnippets(markdown: string): Snippet[] {
  const lines = markdown.split(/\r?\n/);
  const snippets: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[i] as string);
    if (open === null) continue;
    const fence = open[1] as string;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !(lines[j] as string).trimStart().startsWith(fence)) {
      body.push(lines[j] as string);
      j++;
    }
    snippets.push({ lang: (open[2] as string).toLowerCase(), line: i + 2, code: body.join('\n') });
    i = j;
  }
  return snippets;
}

/** A compiler error in a snippet, at its line in the Markdown file. */
export interface SnippetError {
  readonly line: number;
  readonly message: string;
}

/**
 * Type-checks TypeScript snippets as one program under a project's tsconfig.json (its `paths`
 * included, so the package's own name resolves to its sources), each snippet its own ES module in
 * the project root, with `preamble` (the text of a script of ambient declarations) visible to all.
 * Returns
 * the errors of each snippet, in order.
 */
export function typeCheckSnippets(
  snippets: readonly Snippet[],
  options: { readonly tsconfig: string; readonly preamble: string },
): SnippetError[][] {
  const root = dirname(options.tsconfig);
  const config = ts.readConfigFile(options.tsconfig, (path) => ts.sys.readFile(path));
  if (config.error !== undefined) throw new Error(format([config.error]));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const compilerOptions: ts.CompilerOptions = {
    ...parsed.options,
    noEmit: true,
    // Each snippet is a module of its own, imports or not (the preamble, a .d.ts, stays global).
    moduleDetection: ts.ModuleDetectionKind.Force,
  };

  // Virtual files next to tsconfig.json: the same package.json scope ("type": "module") and the
  // same module resolution as the project's own files.
  const files = new Map<string, string>();
  const names = snippets.map((snippet, index) => {
    const name = join(root, `__readme_snippet_${index}.ts`);
    files.set(name, snippet.code);
    return name;
  });
  const preamble = join(root, '__readme_preamble.d.ts');
  files.set(preamble, options.preamble);

  const host = ts.createCompilerHost(compilerOptions, true);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (name) => files.has(name) || fileExists.call(host, name);
  host.readFile = (name) => files.get(name) ?? readFile.call(host, name);
  host.getSourceFile = (name, languageVersion, ...rest) => {
    const text = files.get(name);
    return text === undefined
      ? getSourceFile.call(host, name, languageVersion, ...rest)
      : ts.createSourceFile(name, text, languageVersion, true);
  };

  const program = ts.createProgram({
    rootNames: [preamble, ...names],
    options: compilerOptions,
    host,
  });
  const global = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
  const preambleErrors = ts.getPreEmitDiagnostics(program, program.getSourceFile(preamble));
  if (global.length > 0 || preambleErrors.length > 0) {
    throw new Error(format([...global, ...preambleErrors]));
  }
  return names.map((name, index) => {
    const file = program.getSourceFile(name) as ts.SourceFile;
    const diagnostics = [
      ...program.getSyntacticDiagnostics(file),
      ...program.getSemanticDiagnostics(file),
    ];
    return diagnostics.map((diagnostic) => {
      const at =
        diagnostic.file === file && diagnostic.start !== undefined
          ? file.getLineAndCharacterOfPosition(diagnostic.start).line
          : 0;
      return {
        line: (snippets[index] as Snippet).line + at,
        message: `TS${diagnostic.code}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`,
      };
    });
  });
}

function format(diagnostics: readonly ts.Diagnostic[]): string {
  return ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (name) => name,
    getCurrentDirectory: () => process.cwd(),
    getNewLine: () => '\n',
  });
}
