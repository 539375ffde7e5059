from simpletuner_cloud.cli import main

main()
