'use strict';
/**
 * A jest reporter that names, after the run, every test that was skipped and the reason its title gives (e.g. the
 * EventStoreDB contract suite when EVENTSTORE_CONNECTION_STRING is not set). jest's own summary only counts them,
 * and drops the console output of a file whose tests were all skipped.
 */
class SkippedReporter {
  onRunComplete(_contexts, results) {
    const skipped = [];
    for (const file of results.testResults) {
      for (const test of file.testResults) {
        if (test.status === 'pending' || test.status === 'skipped' || test.status === 'todo') skipped.push(`  ${test.fullName}  (${file.testFilePath.replace(`${process.cwd()}/`, '')})`);
      }
    }
    if (skipped.length > 0) process.stderr.write(`\nSkipped, not run (${skipped.length}):\n${skipped.join('\n')}\n`);
  }
}
module.exports = SkippedReporter;
