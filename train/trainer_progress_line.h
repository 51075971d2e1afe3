#pragma once
// ProgressLine: the live status of a training run — step, loss, throughput, ETA. On a terminal
// it redraws one line in place (\r); otherwise (a log file, a pipe, or mpirun's output redirected:
// the rule is dist/terminal_output.h's) it prints a plain line every `every` steps, so logs stay
// readable.
//
//   ProgressLine progress(total_steps, "samples/s", 50);
//   progress.update(step, loss, batch_size);  // after each step
//   progress.print("epoch 1: test accuracy 87.1%");  // a message that stays
#include <chrono>
#include <cstdint>
#include <string>

namespace dtrain::train {

class ProgressLine {
 public:
  // total_steps: where the run ends; unit: what items per second counts ("samples/s");
  // every: how often to print a plain line when stdout is not a terminal.
  ProgressLine(int64_t total_steps, std::string unit, int64_t every);
  ~ProgressLine();  // ends a pending in-place line, so later output starts on a fresh one

  // Records step (1-based, the optimizer steps done), its loss and how many items it processed.
  void update(int64_t step, double loss, int64_t items);
  // A line of its own below the progress line as it stands; the next update starts a new one.
  void print(const std::string& message);
  // Forgets the time since the last update: call after work that is not training (evaluation,
  // saving a checkpoint), so it counts neither in the throughput nor in the ETA.
  void exclude_pause();

  // Items per second and mean loss over the steps since the last printed line.
  double throughput() const { return window_seconds_ > 0 ? window_items_ / window_seconds_ : 0.0; }
  double mean_loss() const { return window_steps_ > 0 ? window_loss_ / window_steps_ : 0.0; }
  // Mean wall seconds per step over the same window (pauses excluded).
  double seconds_per_step() const { return window_steps_ > 0 ? window_seconds_ / window_steps_ : 0.0; }
  // Starts a new window for throughput() and mean_loss().
  void reset_window();

 private:
  using Clock = std::chrono::steady_clock;

  void draw(int64_t step);

  int64_t total_steps_;
  std::string unit_;
  int64_t every_;
  bool in_place_;          // stdout is a terminal
  bool line_open_ = false;  // an in-place line is on screen without its newline
  Clock::time_point last_update_;
  Clock::time_point last_draw_;
  double train_seconds_ = 0;  // over all updates, for the ETA
  int64_t timed_steps_ = 0;
  double window_seconds_ = 0;
  double window_items_ = 0;
  double window_loss_ = 0;
  int64_t window_steps_ = 0;
};

}  // namespace dtrain::train
