// `ktune import`: records exported on another machine (`ktune export`) into
// a database, validated first and stored all or nothing.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "db/jsonl.h"
#include "schedule_space/error.h"

namespace ktune::cli {

namespace {

struct ImportArgs {
  std::string file;
  std::string db_path = "ktune.db";
  bool skip_bad = false;
  bool best = false;
};

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in) throw Error("cannot read " + path + ": " + std::strerror(errno));
  return text.str();
}

int run_import(const ImportArgs& args) {
  if (args.best && args.skip_bad) {
    throw Error("--skip-bad is for record logs; a best pack is imported whole or not at all");
  }
  // Validated before the database is opened: a bad file creates nothing.
  const std::string text = read_whole(args.file);
  ImportFile file;
  if (args.best) {
    file = read_best_pack(text, args.file);
  } else {
    std::istringstream in(text);
    file = read_jsonl(in, args.file, args.skip_bad);
  }
  for (const std::string& problem : file.problems) std::cerr << "ktune: skipped " << problem << "\n";
  std::unique_ptr<Database> db = Database::open(args.db_path);
  const ImportSummary s = import_file(*db, file);
  if (args.best) {
    std::cout << "imported " << s.imported << " records (" << s.duplicates << " already present); "
              << s.marked << " marked best, " << s.kept_existing << " kept the database's faster best\n";
  } else {
    std::cout << "imported " << s.imported << " records (" << s.duplicates << " already present, " << s.skipped
              << " bad lines skipped)\n";
  }
  return kExitOk;
}

}  // namespace

CommandRun add_import_command(CLI::App& app) {
  auto args = std::make_shared<ImportArgs>();
  CLI::App* cmd = app.add_subcommand("import", "add records exported by `ktune export` to a database");
  cmd->add_option("file", args->file, "a record log (jsonl), or a best pack with --best")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--db", args->db_path, "SQLite tuning log (created if missing)")->capture_default_str();
  cmd->add_flag("--skip-bad", args->skip_bad, "import the good lines of a log with bad ones, listing those on stderr");
  cmd->add_flag("--best", args->best, "the file is a best pack (`ktune export --format json --best`)");
  return [args] { return run_import(*args); };
}

}  // namespace ktune::cli
