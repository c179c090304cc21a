/**
 * The package as a user gets it: packed into a tarball, installed into a
 * fresh project next to `effect`, type-checked by a consumer under
 * `moduleResolution` `nodenext` and `bundler`, and the README's examples run
 * there on this Node, their output compared with what the README shows.
 *
 * An example in the README is a ```ts block whose first line is
 * `// example: <file>.ts`, followed by a ```text block with its exact output.
 */
import { assert, describe, it } from "@effect/vitest"
import * as childProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")

interface Example {
  readonly file: string
  readonly code: string
  readonly output: string
}

/** The README's test files: blocks marked `// example (vitest): <file>`, run with vitest. */
export const readmeTestExamples = (readme: string): ReadonlyArray<Omit<Example, "output">> =>
  Array.from(
    readme.matchAll(/```ts\n\/\/ example \(vitest\): (\S+)\n([\s\S]*?)```/g),
    (match) => ({ file: match[1], code: match[2] })
  )

/** The README's examples, each with the output it shows. */
export const readmeExamples = (readme: string): ReadonlyArray<Example> => {
  const examples: Array<Example> = []
  const pattern = /```ts\n\/\/ example: (\S+)\n([\s\S]*?)```\s*```text\n([\s\S]*?)```/g
  for (const match of readme.matchAll(pattern)) {
    examples.push({ file: match[1], code: match[2], output: match[3].trimEnd() })
  }
  return examples
}

/** One command of a README shell session, with what it prints (stdout and stderr as a terminal shows them). */
interface TranscriptStep {
  readonly command: string
  readonly output: string
}

/** The README's shell sessions: ```console blocks that begin `# transcript: <name>`. */
export const readmeTranscripts = (readme: string): ReadonlyArray<ReadonlyArray<TranscriptStep>> => {
  const sessions: Array<Array<TranscriptStep>> = []
  for (const match of readme.matchAll(/```console\n# transcript: \S+\n([\s\S]*?)```/g)) {
    const steps: Array<TranscriptStep> = []
    for (const line of match[1].split("\n")) {
      if (line.startsWith("$ ")) steps.push({ command: line.slice(2), output: "" })
      else if (steps.length > 0) steps[steps.length - 1] = { ...steps[steps.length - 1], output: steps[steps.length - 1].output + line + "\n" }
    }
    sessions.push(steps.map((step) => ({ ...step, output: step.output.replace(/\n+$/, "\n").replace(/^\n$/, "") })))
  }
  return sessions
}

/** What differs from one run of a session to the next: the time in the name of a repair's copy. */
const normalizeTranscript = (text: string): string => text.replace(/\.dropped-(\d+)-\d+/g, ".dropped-$1-<time>")

const run = (command: string, args: ReadonlyArray<string>, cwd: string): string => {
  const result = childProcess.spawnSync(command, args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" },
    maxBuffer: 64 * 1024 * 1024
  })
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${result.status ?? result.signal}) in ${cwd}:\n${result.stdout}\n${result.stderr}`)
  }
  return result.stdout
}

/** The consumer's compiler settings, besides the resolution under test. */
const consumerOptions = {
  target: "ES2024",
  // effect's own declarations name Web Crypto types (CryptoKey, JsonWebKey).
  lib: ["ES2024", "DOM"],
  types: ["node"],
  strict: true,
  exactOptionalPropertyTypes: true,
  noEmit: true,
  // A user's project type-checks its dependencies' declarations too.
  skipLibCheck: false,
  allowImportingTsExtensions: true,
  verbatimModuleSyntax: true
}

describe("the packed package", () => {
  it("installs from its tarball, type-checks under nodenext and bundler resolution, and runs the README's examples", () => {
    const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")
    const examples = readmeExamples(readme)
    assert.isAtLeast(examples.length, 3, "the README shows the Effect, Promise and PersistedCache examples")
    for (const expected of ["effect.ts", "promise.ts", "persisted-cache.ts"]) {
      assert.include(examples.map((example) => example.file), expected)
    }

    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "kvlog-package-"))
    try {
      // `npm pack` builds `dist` first (the `prepack` script).
      const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", scratch], root)) as Array<
        { readonly filename: string; readonly files: ReadonlyArray<{ readonly path: string }> }
      >
      const tarball = path.join(scratch, packed[0].filename)
      const shipped = packed[0].files.map((file) => file.path)
      for (const entry of ["dist/cli/bin.js", "dist/index.js", "dist/index.d.ts", "dist/promise.js", "dist/Persistence.js", "dist/SchemaStore.js", "dist/testing/index.js", "README.md"]) {
        assert.include(shipped, entry, `the tarball ships ${entry}`)
      }
      assert.isFalse(shipped.some((file) => file.startsWith("test/") || file.startsWith("bench/")), "no tests or benches in the tarball")

      const project = path.join(scratch, "app")
      fs.mkdirSync(path.join(project, "src"), { recursive: true })
      fs.writeFileSync(
        path.join(project, "package.json"),
        JSON.stringify({ name: "kvlog-consumer", private: true, type: "module" }, null, 2)
      )
      const own = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))
      const installed = (name: string) =>
        JSON.parse(fs.readFileSync(path.join(root, "node_modules", name, "package.json"), "utf8")).version as string
      run("npm", [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        tarball,
        `effect@${installed("effect")}`,
        `@types/node@${installed("@types/node")}`,
        // The optional peers of kvlog/testing, which its example needs.
        `@effect/vitest@${installed("@effect/vitest")}`,
        `vitest@${installed("vitest")}`,
        `fast-check@${installed("fast-check")}`
      ], project)
      // The peer dependency is effect, and nothing else is installed at run time.
      const lock = JSON.parse(fs.readFileSync(path.join(project, "package-lock.json"), "utf8"))
      const kvlogEntry = lock.packages["node_modules/kvlog"]
      assert.strictEqual(kvlogEntry.version, own.version)
      // Its one runtime dependency runs the kvlog command.
      assert.deepStrictEqual(kvlogEntry.dependencies, own.dependencies)
      assert.deepStrictEqual(Object.keys(own.dependencies), ["@effect/platform-node"])
      assert.deepStrictEqual(Object.keys(kvlogEntry.peerDependencies ?? {}).sort(), Object.keys(own.peerDependencies).sort())

      const testExamples = readmeTestExamples(readme)
      assert.isAtLeast(testExamples.length, 1, "the README shows the contract suite at work")
      for (const example of [...examples, ...testExamples]) {
        fs.writeFileSync(path.join(project, "src", example.file), example.code)
      }
      const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc")
      for (const resolution of [{ module: "nodenext", moduleResolution: "nodenext" }, { module: "preserve", moduleResolution: "bundler" }]) {
        const config = `tsconfig.${resolution.moduleResolution}.json`
        fs.writeFileSync(
          path.join(project, config),
          JSON.stringify({ compilerOptions: { ...consumerOptions, ...resolution }, include: ["src"] }, null, 2)
        )
        run(process.execPath, [tsc, "-p", config], project)
      }

      // The kvlog command from the tarball: npx finds it, and the README's session runs as shown.
      const pathWithBins = [path.join(project, "node_modules", ".bin"), path.dirname(process.execPath), process.env.PATH].join(path.delimiter)
      const help = childProcess.spawnSync("npx", ["--no-install", "kvlog", "--help"], {
        cwd: project,
        encoding: "utf8",
        env: { ...process.env, PATH: pathWithBins }
      })
      assert.strictEqual(help.status, 0, help.stderr)
      assert.include(help.stdout, "verify")
      const transcripts = readmeTranscripts(readme)
      assert.strictEqual(transcripts.length, 1, "the README shows one kvlog session")
      for (const step of transcripts[0]) {
        const ran = childProcess.spawnSync("bash", ["-c", `{ ${step.command}\n} 2>&1`], {
          cwd: project,
          encoding: "utf8",
          env: { ...process.env, PATH: pathWithBins }
        })
        assert.strictEqual(normalizeTranscript(ran.stdout), normalizeTranscript(step.output), `$ ${step.command}`)
      }

      const outputs: Record<string, string> = {}
      for (const example of examples) {
        const output = run(process.execPath, [path.join("src", example.file)], project)
        assert.strictEqual(output.trimEnd(), example.output, `the output of ${example.file} is the README's`)
        outputs[example.file] = output.trimEnd()
      }
      // kvlog/testing from the tarball, with its optional peers: the README's contract suite passes.
      const vitest = path.join(project, "node_modules", "vitest", "vitest.mjs")
      run(process.execPath, [
        vitest,
        "run",
        "--reporter=json",
        "--outputFile=vitest-report.json",
        ...testExamples.map((example) => path.join("src", example.file))
      ], project)
      const report = JSON.parse(fs.readFileSync(path.join(project, "vitest-report.json"), "utf8")) as {
        numPassedTests: number
        numFailedTests: number
        success: boolean
      }
      assert.isTrue(report.success)
      assert.strictEqual(report.numFailedTests, 0)
      assert.isAtLeast(report.numPassedTests, 20, "the contract suite registered its tests")
      console.log(JSON.stringify({
        package: {
          tarball: path.basename(tarball),
          files: shipped.length,
          node: process.version,
          outputs,
          contractSuite: { passed: report.numPassedTests, failed: report.numFailedTests }
        }
      }))
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true })
    }
  }, 300_000)
})
