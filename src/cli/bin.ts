#!/usr/bin/env node
/**
 * The `kvlog` executable: runs the command tree on Node, prints a failure as
 * one line on stderr (never a stack trace), and exits with the command's
 * code (see `ExitCode`).
 */
// The modules themselves, not the package's index, which would load all of the platform (~0.4 s a start).
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { CliOutput, Command } from "effect/cli"
import { readFileSync } from "node:fs"
import { describeFailure, ExitCode, kvlog } from "./Commands.ts"
import { printError } from "./Terminal.ts"

const version = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string })
  .version

// A reader that stops early (`kvlog dump log | head`) is not a failure of the command.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(ExitCode.Ok)
  printError(`writing to stdout: ${error.message}`)
  process.exit(ExitCode.Failed)
})

/**
 * Help and the version as effect/cli prints them; a wrong command line as one
 * line on stderr that says what is wrong and where the usage is, instead of
 * the whole help page.
 */
const presenter = CliOutput.layerPresenter({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Effect.sync(() =>
        printError(
          `${event.errors.map((error) => error.message).join("; ")} (see: ${event.commandPath.join(" ")} --help)`
        )
      )
      : CliOutput.defaultPresenter.present(event)
})

const program: Effect.Effect<number> = Command.run(kvlog, { version }).pipe(
  Effect.as(ExitCode.Ok),
  Effect.catchCause((cause) =>
    Effect.sync(() => {
      if (Cause.hasInterruptsOnly(cause)) return 130
      const error = Cause.squash(cause)
      // The presenter has already said what is wrong with the command line
      // (or shown the help, for `kvlog` alone: no command was run).
      if (typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "ShowHelp") {
        return ExitCode.Usage
      }
      const failure = describeFailure(error)
      if (failure.message) printError(failure.message)
      return failure.code
    })
  ),
  Effect.provide(Layer.mergeAll(NodeServices.layer, presenter))
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) ? exit.value as number : 70)
})
