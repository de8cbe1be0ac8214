package dev.latentmoe.bench;

/** One command of the table in {@link Main}: it parses its own options from {@code argv} (argv[0] is the command's name). */
@FunctionalInterface
public interface Command {
    void run(String[] argv);
}
