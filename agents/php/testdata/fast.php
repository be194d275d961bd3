<?php
echo "fast page body\n";
