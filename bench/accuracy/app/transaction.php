<?php
// A transaction: BEGIN, the statements asked for, COMMIT.
require __DIR__ . '/truth.php';
AccTruth::begin('transaction', 'ordinary');
$conn = pg_connect((string) getenv('BV_ACC_CONNINFO'), PGSQL_CONNECT_FORCE_NEW);
AccTruth::pg($conn, 'BEGIN');
foreach (AccTruth::durations() as $i => $s) {
    AccTruth::pg($conn, str_replace('$1', (string) $s, acc_step_sql($i, '$1')));
    AccTruth::gap();
}
AccTruth::pg($conn, 'COMMIT');
pg_close($conn);
