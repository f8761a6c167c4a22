fn main() -> std::process::ExitCode {
    hearth_agent::cli::main()
}
