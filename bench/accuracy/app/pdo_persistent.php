<?php
// PDO with PDO::ATTR_PERSISTENT, prepared statements (Parse/Bind/Execute, then DEALLOCATE).
require __DIR__ . '/truth.php';
AccTruth::begin('pdo_persistent', 'persistent');
$pdo = new PDO((string) getenv('BV_ACC_PDO_DSN'), (string) getenv('BV_ACC_PDO_USER'), null, array(PDO::ATTR_PERSISTENT => true, PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION));
$pid = AccTruth::pdoPid($pdo);
foreach (AccTruth::durations() as $i => $s) {
    AccTruth::pdo($pdo, $pid, acc_step_sql($i, '?'), array($s));
    AccTruth::gap();
}
