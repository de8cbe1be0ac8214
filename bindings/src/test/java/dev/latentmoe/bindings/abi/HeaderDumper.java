package dev.latentmoe.bindings.abi;

import dev.latentmoe.bindings.runtime.Knob;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs bindings/src/test/python/dump_header.py in the repo's venv ({@code .tools/pyenv}, made by
 * ensure-venv.sh when missing) and parses its JSON. Any failure is an AssertionError with the
 * reason: CI installs python3, so a missing toolchain must fail the build, not skip.
 */
public final class HeaderDumper {

  private HeaderDumper() {}

  /** The repository root: {@code latentmoe.repo.dir}, else the nearest ancestor with native/. */
  public static Path repoRoot() {
    String p = Knob.REPO_DIR.get();
    if (p != null) {
      return Path.of(p).toAbsolutePath();
    }
    for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
      if (Files.isDirectory(d.resolve("native/include")) && Files.isRegularFile(d.resolve("pom.xml"))) {
        return d;
      }
    }
    throw new AssertionError("cannot find the repository root (a directory with pom.xml and "
        + "native/include) above " + Path.of("").toAbsolutePath());
  }

  public static Path pythonDir(Path repo) {
    return repo.resolve("bindings/src/test/python");
  }

  private static Path python;

  /** The venv's python, created on first use (pip needs the network only then). */
  public static synchronized Path python(Path repo) {
    if (python == null) {
      Result r = run(List.of("bash", pythonDir(repo).resolve("ensure-venv.sh").toString(),
          repo.toString()), repo, Duration.ofMinutes(10));
      String[] lines = r.stdout().strip().split("\n");
      Path py = Path.of(lines[lines.length - 1].strip());
      if (r.rc() != 0 || !Files.isExecutable(py)) {
        throw new AssertionError("cannot make the python venv with libclang at "
            + repo.resolve(".tools/pyenv") + " (needs python3 with venv and PyPI access; "
            + "ensure-venv.sh exit " + r.rc() + ")\n" + r.stderr() + r.stdout());
      }
      python = py;
    }
    return python;
  }

  /** Dumps {@code header} with clang; {@code includeDirs} become -I options. */
  public static HeaderAbi dump(Path repo, Path header, List<String> includeDirs) {
    if (!Files.isRegularFile(header)) {
      throw new AssertionError("header not found: " + header);
    }
    List<String> cmd = new ArrayList<>(List.of(python(repo).toString(),
        pythonDir(repo).resolve("dump_header.py").toString(), header.toString()));
    for (String d : includeDirs) {
      cmd.add("-I" + repo.resolve(d));
    }
    Result r = run(cmd, repo, Duration.ofMinutes(2));
    if (r.rc() != 0) {
      throw new AssertionError("dump_header.py failed on " + header + " (exit " + r.rc() + ")\n"
          + r.stderr());
    }
    try {
      return HeaderAbi.fromJson(r.stdout());
    } catch (RuntimeException e) {
      throw new AssertionError("dump_header.py printed unreadable JSON: " + e.getMessage()
          + "\n" + r.stdout() + r.stderr(), e);
    }
  }

  public record Result(int rc, String stdout, String stderr) {}

  public static Result run(List<String> cmd, Path dir, Duration timeout) {
    Path out = null;
    Path err = null;
    try {
      // Files, not pipes: a chatty stderr cannot block the child while we read stdout.
      out = Files.createTempFile("lmoe-drift", ".out");
      err = Files.createTempFile("lmoe-drift", ".err");
      Process p = new ProcessBuilder(cmd).directory(dir.toFile())
          .redirectOutput(out.toFile()).redirectError(err.toFile()).start();
      if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        p.destroyForcibly();
        throw new AssertionError("timed out after " + timeout + ": " + String.join(" ", cmd));
      }
      return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
          Files.readString(err, StandardCharsets.UTF_8));
    } catch (IOException e) {
      throw new AssertionError("cannot run " + String.join(" ", cmd) + ": " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted: " + String.join(" ", cmd), e);
    } finally {
      try {
        if (out != null) {
          Files.deleteIfExists(out);
        }
        if (err != null) {
          Files.deleteIfExists(err);
        }
      } catch (IOException ignored) {
        // temp files; best effort
      }
    }
  }
}
