#include "train/trainer_progress_line.h"

#include <cstdio>
#include <utility>

#include "dist/terminal_output.h"

namespace dtrain::train {

namespace {

// "42s", "3m05s", "1h02m".
std::string duration_text(double seconds) {
  auto total = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  if (total < 60) {
    std::snprintf(text, sizeof text, "%llds", static_cast<long long>(total));
  } else if (total < 3600) {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  } else {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>(total % 3600 / 60));
  }
  return text;
}

// A terminal redraws at most this often; faster only costs time.
constexpr double kRedrawSeconds = 0.1;

}  // namespace

ProgressLine::ProgressLine(int64_t total_steps, std::string unit, int64_t every)
    : total_steps_(total_steps), unit_(std::move(unit)), every_(every < 1 ? 1 : every),
      in_place_(dist::stdout_redraws_in_place()), last_update_(Clock::now()), last_draw_(last_update_) {}

ProgressLine::~ProgressLine() {
  if (line_open_) std::fputc('\n', stdout);
  std::fflush(stdout);
}

void ProgressLine::update(int64_t step, double loss, int64_t items) {
  Clock::time_point now = Clock::now();
  double seconds = std::chrono::duration<double>(now - last_update_).count();
  last_update_ = now;
  train_seconds_ += seconds;
  ++timed_steps_;
  window_seconds_ += seconds;
  window_items_ += static_cast<double>(items);
  window_loss_ += loss;
  ++window_steps_;

  bool last = step == total_steps_;
  if (in_place_) {
    if (last || std::chrono::duration<double>(now - last_draw_).count() >= kRedrawSeconds) {
      draw(step);
      last_draw_ = now;
    }
  } else if (step % every_ == 0 || last) {
    draw(step);
  }
}

void ProgressLine::draw(int64_t step) {
  double seconds_per_step = timed_steps_ > 0 ? train_seconds_ / static_cast<double>(timed_steps_) : 0.0;
  double eta = seconds_per_step * static_cast<double>(total_steps_ - step);
  std::printf("%sstep %lld/%lld  loss %.4f  %.0f %s  ETA %s%s", in_place_ ? "\r" : "", static_cast<long long>(step),
              static_cast<long long>(total_steps_), mean_loss(), throughput(), unit_.c_str(),
              duration_text(eta).c_str(), in_place_ ? "\x1b[K" : "\n");  // \x1b[K clears what a longer earlier line left
  line_open_ = in_place_;
  std::fflush(stdout);
}

void ProgressLine::print(const std::string& message) {
  // The in-place line stays on screen as it is: a message is a milestone of the run, and the
  // progress at that moment belongs next to it.
  std::printf("%s%s\n", line_open_ ? "\n" : "", message.c_str());
  line_open_ = false;
  std::fflush(stdout);
}

void ProgressLine::exclude_pause() { last_update_ = Clock::now(); }

void ProgressLine::reset_window() {
  window_seconds_ = 0;
  window_items_ = 0;
  window_loss_ = 0;
  window_steps_ = 0;
}

}  // namespace dtrain::train
